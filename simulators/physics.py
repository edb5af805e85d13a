"""Physical models of the programme's facilities: pure numpy functions over a time grid, no I/O.

Everything here is a function of a random generator and plain arrays, so the same code drives the live
simulators (a day at a time), the history backfill (a year at a time) and the property tests. Units are
in the names; references are DOMAIN.md's unless stated.

Rainfall is calibrated to Shanghai: the monthly shape of the China Meteorological Administration's
1981-2010 normals for Xujiahui (monthly totals and days with >= 0.1 mm, as tabulated in the CMA
normals and reproduced in Wikipedia's "Climate of Shanghai" table), scaled so the long-run mean is
1,200 mm/year, the middle of DOMAIN.md's 1,150-1,250 mm/year, with June-September the wettest months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Monthly rainfall shape (mm) and wet days (>= 0.1 mm), Jan..Dec, CMA 1981-2010 Xujiahui normals.
NORMAL_MONTHLY_MM = np.array([74.9, 59.1, 98.1, 78.5, 96.1, 207.2, 158.2, 224.7, 113.6, 62.3, 55.2, 47.6])
NORMAL_WET_DAYS = np.array([10.2, 9.9, 13.2, 11.9, 11.3, 13.6, 11.4, 12.3, 10.1, 7.2, 8.0, 7.9])
TARGET_ANNUAL_MM = 1200.0
MONTHLY_MEAN_MM = NORMAL_MONTHLY_MM * TARGET_ANNUAL_MM / NORMAL_MONTHLY_MM.sum()
DAYS_IN_MONTH = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
#: Calibrated ranges a simulated year must fall in: the long-run mean (over many seeds) within
#: DOMAIN.md's range, and any one year within +-4 standard deviations of it. The generator's
#: year-to-year standard deviation is about 170 mm (coefficient of variation 0.14); Shanghai's
#: recorded annual totals span roughly 700-1,800 mm, which a rare simulated year may exceed.
ANNUAL_MEAN_RANGE_MM = (1150.0, 1250.0)
ANNUAL_SINGLE_YEAR_RANGE_MM = (500.0, 1900.0)
#: Lag-one persistence of wet days (rain comes in spells; plum rain in June-July).
WET_PERSISTENCE = 0.3
#: Gamma shape of wet-day amounts (1: exponential): most wet days are light, a few are downpours.
#: A smaller shape (0.75 was tried) made single years too variable (sd 215 mm, some over 2,100 mm).
WET_DAY_GAMMA_SHAPE = 1.0


def daily_rainfall_mm(rng: np.random.Generator, months: npt.NDArray[np.int64], wet_yesterday: bool) -> F:
    """Rain per day for days in `months` (1-12), a two-state Markov chain with gamma amounts.

    P(wet | dry) = p (1 - r), P(wet | wet) = p + r (1 - p), whose stationary wet share is p, the
    month's wet days / days; amounts are gamma with the month's mean wet-day depth.
    """
    p = NORMAL_WET_DAYS[months - 1] / DAYS_IN_MONTH[months - 1]
    mean_wet_mm = MONTHLY_MEAN_MM[months - 1] / NORMAL_WET_DAYS[months - 1]
    draws = rng.random(len(months))
    amounts = rng.gamma(WET_DAY_GAMMA_SHAPE, mean_wet_mm / WET_DAY_GAMMA_SHAPE)
    out = np.zeros(len(months))
    wet = wet_yesterday
    for i in range(len(months)):
        threshold = p[i] + WET_PERSISTENCE * (1 - p[i]) if wet else p[i] * (1 - WET_PERSISTENCE)
        wet = bool(draws[i] < threshold)
        if wet:
            out[i] = max(float(amounts[i]), 0.1)
    return out


def spread_rain(rng: np.random.Generator, day_mm: float, steps_per_day: int) -> F:
    """Spread a day's rain over one event of 1-12 h at a random time of the day (uniform intensity)."""
    out = np.zeros(steps_per_day)
    if day_mm <= 0:
        return out
    steps_per_hour = steps_per_day / 24
    duration = max(1, round(rng.integers(1, 13) * steps_per_hour))
    start = int(rng.integers(0, steps_per_day - duration + 1))
    out[start : start + duration] = day_mm / duration
    return out


@dataclass
class FirstFlushState:
    """Rain already fallen in the current event per catchment, and steps since it last rained."""

    event_mm: float = 0.0
    dry_steps: int = 10**9


#: A dry gap this long ends a rain event, so the next rain is diverted again (first flush).
EVENT_GAP_S = 6 * 3600


def runoff_m3(
    rain_mm: F, area_m2: float, psi: float, first_flush_mm: float, state: FirstFlushState, step_s: int
) -> tuple[F, F]:
    """Runoff reaching the tank and volume diverted as first flush, per step, for one catchment.

    Q = A * psi * max(P_event - delta, 0) / 1000 (DOMAIN.md "Runoff"), applied incrementally: within
    an event the first `first_flush_mm` of rain is diverted, the rest runs off to the tank.
    """
    to_tank = np.zeros_like(rain_mm)
    diverted = np.zeros_like(rain_mm)
    gap_steps = max(1, -(-EVENT_GAP_S // step_s))  # ceil: a gap of at least EVENT_GAP_S, at least a step
    factor = area_m2 * psi / 1000.0
    if not rain_mm.any():
        state.dry_steps += len(rain_mm)
        return to_tank, diverted
    for i, r in enumerate(rain_mm.tolist()):
        if r <= 0:
            state.dry_steps += 1
            continue
        if state.dry_steps >= gap_steps:
            state.event_mm = 0.0
        state.dry_steps = 0
        before = state.event_mm
        state.event_mm += r
        divert_mm = min(max(first_flush_mm - before, 0.0), r)
        diverted[i] = divert_mm * factor
        to_tank[i] = (r - divert_mm) * factor
    return to_tank, diverted


@dataclass
class TankState:
    """Stored volume of a rainwater tank."""

    volume_m3: float


@dataclass(frozen=True)
class TankResult:
    """Per-step flows of the yield-after-spillage tank model (m3 per step) and the end-of-step volume."""

    inflow_m3: F
    supply_m3: F
    makeup_m3: F
    overflow_m3: F
    volume_m3: F


def tank_balance(
    inflow_m3: F,
    demand_m3: F,
    capacity_m3: float,
    max_supply_m3_per_step: float,
    state: TankState,
    reserve_m3: float = 0.0,
) -> TankResult:
    """Yield-after-spillage per step (DOMAIN.md "Tank"): Y = min(D, V + Q - reserve, treatment cap);
    V' = min(V + Q - Y, S), the excess overflows; demand not met from the tank is mains make-up.

    The treatment unit limits supply to its rated flow; `reserve_m3` is kept for the pump's suction.
    """
    n = len(inflow_m3)
    supply = np.zeros(n)
    overflow = np.zeros(n)
    volume = np.zeros(n)
    v = state.volume_m3
    q_all = inflow_m3.tolist()
    d_all = demand_m3.tolist()
    for i in range(n):
        q = q_all[i]
        d = d_all[i]
        y = min(d, max(v + q - reserve_m3, 0.0), max_supply_m3_per_step)
        v = v + q - y
        if v > capacity_m3:
            overflow[i] = v - capacity_m3
            v = capacity_m3
        supply[i] = y
        volume[i] = v
    state.volume_m3 = v
    return TankResult(inflow_m3, supply, demand_m3 - supply, overflow, volume)


def irrigation_demand_m3(
    local_hour: npt.NDArray[np.int64],
    month: int,
    rain_last_24h_mm: float,
    rated_flow_m3h: float,
    step_s: int,
    hours: tuple[int, ...] = (6, 7),
) -> F:
    """Irrigation and road-washing demand for one day: the treatment unit's rated flow during the
    watering hours, scaled by season, and nothing after more than 5 mm of rain in the last 24 h
    (watering then would be the "irrigation on rainy days" DOMAIN.md calls suspicious).
    """
    season = SEASONAL_DEMAND[month - 1]
    if rain_last_24h_mm > 5.0:
        season = 0.0
    per_step = rated_flow_m3h * step_s / 3600.0 * season
    return np.where(np.isin(local_hour, hours), per_step, 0.0)


#: Share of the watering hours actually used by month (Shanghai: little in winter, most in summer).
SEASONAL_DEMAND = np.array([0.3, 0.3, 0.5, 0.8, 1.0, 0.9, 1.0, 1.0, 1.0, 0.8, 0.5, 0.3])

#: Household water use (DOMAIN.md: GB/T 50331 zone 3, 120-180 L/person/day) by local hour, as shares of
#: the day: morning and evening peaks, a night minimum that is never zero.
DIURNAL_SHARE = np.array(
    [1.2, 0.8, 0.6, 0.6, 0.8, 2.0, 5.5, 7.5, 6.5, 5.0, 4.5, 4.8,
     5.2, 4.2, 3.6, 3.4, 3.8, 4.8, 6.4, 7.2, 6.8, 5.6, 4.0, 2.4]
)  # fmt: skip
DIURNAL_SHARE = DIURNAL_SHARE / DIURNAL_SHARE.sum()


def household_m3(
    rng: np.random.Generator, local_hour: npt.NDArray[np.int64], population: int, lpcd: float, step_s: int
) -> F:
    """Potable household use per step for one day: population x L/person/day, shaped by the diurnal
    pattern, with +-15 % noise per step and a day-to-day factor (weather, weekends)."""
    day_factor = float(rng.normal(1.0, 0.06))
    steps_per_hour = 3600 / step_s
    base = population * lpcd / 1000.0 * day_factor * DIURNAL_SHARE[local_hour] / steps_per_hour
    return np.maximum(base * rng.normal(1.0, 0.15, len(local_hour)), 0.0)


@dataclass(frozen=True)
class PumpResult:
    """River pump per step: volume (m3), running flag, power (kW) and outlet pressure (kPa)."""

    volume_m3: F
    running: B
    power_kw: F
    pressure_kpa: F


#: Pumping head (m) and wire-to-water efficiency of a small irrigation pump: P = rho g Q H / eta.
PUMP_HEAD_M = 30.0
PUMP_EFFICIENCY = 0.55


def river_pump_day(
    rng: np.random.Generator,
    local_hour: npt.NDArray[np.int64],
    month: int,
    rain_last_72h_mm: float,
    rated_flow_m3h: float,
    run_minutes: float,
    step_s: int,
) -> PumpResult:
    """One day of a river-water irrigation pump: it runs `run_minutes` from 17:00 on dry days of the
    growing season (April-October) at its rated flow (+-3 %), and not after more than 5 mm of rain in
    the last three days."""
    n = len(local_hour)
    running = np.zeros(n, dtype=bool)
    if 4 <= month <= 10 and rain_last_72h_mm <= 5.0:
        start = int(17 * 3600 / step_s)
        steps = max(1, round(run_minutes * 60 / step_s))
        running[start : start + steps] = True
    flow_m3h = np.where(running, rated_flow_m3h * rng.normal(1.0, 0.03, n), 0.0)
    volume = flow_m3h * step_s / 3600.0
    power_kw = np.where(running, 1000 * 9.81 * flow_m3h / 3600.0 * PUMP_HEAD_M / PUMP_EFFICIENCY / 1000, 0.0)
    pressure = np.where(running, 1000 * 9.81 * PUMP_HEAD_M / 1000 * rng.normal(1.0, 0.02, n), 0.0)
    return PumpResult(volume, running, power_kw, pressure)


#: Vehicle classes with their share of washes and the water quota (L/car, DOMAIN.md).
VEHICLE_CLASSES = ("sedan", "small", "medium", "large")
VEHICLE_MIX = np.array([0.62, 0.22, 0.12, 0.04])
QUOTA_L = {"sedan": 40.0, "small": 50.0, "medium": 55.0, "large": 90.0}
#: Micro-water washing, mean fresh litres per car by class (DOMAIN.md: claimed 1-1.5 L per car).
MICRO_WASH_L = np.array([1.2, 1.0, 1.4, 2.4])


@dataclass(frozen=True)
class WashEvents:
    """Car washes of one day: time offset in seconds from local midnight, class index, litres."""

    offset_s: F
    vehicle: npt.NDArray[np.int64]
    fresh_l: F
    recycled_l: F


def car_washes(
    rng: np.random.Generator, washes_per_day: float, litres_by_class: F, recycled_share: float = 0.3
) -> WashEvents:
    """Poisson arrivals during opening hours (08:00-18:00) by vehicle class; fresh litres per wash are
    lognormal around the class mean (coefficient of variation 15 %); a share of the water is recycled."""
    n = int(rng.poisson(washes_per_day))
    offsets = np.sort(rng.uniform(8 * 3600, 18 * 3600, n))
    vehicle = rng.choice(len(VEHICLE_CLASSES), size=n, p=VEHICLE_MIX)
    sigma = 0.15
    fresh = litres_by_class[vehicle] * rng.lognormal(-(sigma**2) / 2, sigma, n)
    recycled = fresh * recycled_share / (1 - recycled_share)
    return WashEvents(offsets, vehicle.astype(np.int64), fresh, recycled)


#: What a simulated year of a well-formed site must show (tests check the backfill against these):
#: reuse is at most GB 50555-2010's usable share of runoff (0.6-0.7) and, for the tank sizes of the
#: examples, no less than a fifth of it; micro-water washing 1-1.5 L per car (the notice); river
#: water near the notice's 480 m3/year for a 12 m3/h pump; households 120-180 L/person/day.
REUSE_SHARE_OF_RUNOFF = (0.2, 0.7)
MICRO_WASH_L_PER_CAR = (1.0, 1.5)
RIVER_WATER_M3_PER_YEAR = (380.0, 580.0)
HOUSEHOLD_LPCD = (120.0, 180.0)
