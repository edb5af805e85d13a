"""Physical models and the simulated site, as properties over seeds and parameters (hypothesis).

Pure: no servers. The expectations come from DOMAIN.md (runoff, the yield-after-spillage tank, Shanghai
rainfall, micro-water washing, zone-3 household use) and from the meaning of a totalizer, never from a
previous run of the code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jieshui.faults import Reset, Rollover
from jieshui.inventory import FacilityKind, Site, load_site
from simulators import physics
from simulators.model import NS, SHANGHAI, DeviceDay, SiteModel

EXAMPLE = Path(__file__).parents[2] / "examples" / "community.yaml"
SITE = load_site(EXAMPLE)
DAYS_PER_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
YEAR_MONTHS = np.repeat(np.arange(1, 13), DAYS_PER_MONTH).astype(np.int64)
#: Step lengths the simulators accept (they must divide a day); the common ones used by the CLI.
ALL_STEPS = [d for d in range(60, 86401) if 86400 % d == 0]
COMMON_STEPS = [60, 300, 600, 900, 1800, 3600]
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=30, deadline=None)


# -- helpers ---------------------------------------------------------------------------------------


def _with_faults(site: Site, device_id: str, faults: Sequence[Reset | Rollover]) -> Site:
    raw = site.model_dump()
    found = 0
    for district in raw["districts"]:
        for community in district["communities"]:
            for facility in community["facilities"]:
                for device in facility["devices"]:
                    if device["id"] == device_id:
                        device["faults"] = [f.model_dump() for f in faults]
                        found += 1
    assert found == 1, device_id
    return Site.model_validate(raw)


def _run(site: Site, seed: int, start: dt.date, days: int, step_s: int) -> dict[str, list[DeviceDay]]:
    model = SiteModel(site, seed=seed, step_s=step_s)
    out: dict[str, list[DeviceDay]] = {}
    for i in range(days):
        for day in model.day(start + dt.timedelta(days=i)):
            out.setdefault(day.device, []).append(day)
    return out


def _series(days: list[DeviceDay], quantity: str) -> tuple[np.ndarray, np.ndarray]:
    """Times (UTC ns) and values of one quantity, every reading of every day in order."""
    times = np.concatenate([d.time_ns for d in days])
    values = np.concatenate([np.asarray(d.values[quantity], dtype=np.float64) for d in days])
    return times, values


def _rainwater_facility() -> Any:
    _, community = next(SITE.communities())
    return next(f for f in community.facilities if f.kind is FacilityKind.RAINWATER_HARVESTING)


# -- the tank ------------------------------------------------------------------------------------


@st.composite
def tank_cases(draw: st.DrawFn) -> dict[str, Any]:
    rng = np.random.default_rng(draw(SEEDS))
    n = draw(st.integers(1, 2000))
    capacity = draw(st.floats(0.5, 500.0))
    # storms: most steps dry, a few large; demand in watering blocks
    inflow = np.where(rng.random(n) < draw(st.floats(0.0, 0.5)), rng.gamma(0.7, capacity / 20, n), 0.0)
    demand = np.where(rng.random(n) < draw(st.floats(0.0, 1.0)), rng.uniform(0, capacity / 10, n), 0.0)
    return {
        "inflow": inflow,
        "demand": demand,
        "capacity": capacity,
        "max_supply": draw(st.floats(0.0, capacity)),
        "reserve": capacity * draw(st.floats(0.0, 0.2)),
        "start": capacity * draw(st.floats(0.0, 1.0)),
    }


@FAST
@given(case=tank_cases())
def test_tank_mass_balance_closes_to_rounding(case: dict[str, Any]) -> None:
    state = physics.TankState(case["start"])
    result = physics.tank_balance(
        case["inflow"],
        case["demand"],
        case["capacity"],
        case["max_supply"],
        state,
        reserve_m3=case["reserve"],
    )
    end = result.volume_m3[-1]
    balance = case["start"] + result.inflow_m3.sum() - result.supply_m3.sum() - result.overflow_m3.sum()
    assert balance == pytest.approx(end, abs=1e-6)
    assert state.volume_m3 == end
    # step by step too: V_t = V_{t-1} + Q_t - Y_t - overflow_t
    before = np.concatenate([[case["start"]], result.volume_m3[:-1]])
    np.testing.assert_allclose(
        before + result.inflow_m3 - result.supply_m3 - result.overflow_m3, result.volume_m3, atol=1e-9
    )
    # demand not met from the tank is mains make-up
    np.testing.assert_allclose(result.supply_m3 + result.makeup_m3, case["demand"], atol=1e-12)


@FAST
@given(case=tank_cases())
def test_tank_level_stays_within_zero_and_capacity(case: dict[str, Any]) -> None:
    result = physics.tank_balance(
        case["inflow"],
        case["demand"],
        case["capacity"],
        case["max_supply"],
        physics.TankState(case["start"]),
        reserve_m3=case["reserve"],
    )
    assert (result.volume_m3 >= 0).all()
    assert (result.volume_m3 <= case["capacity"]).all()
    # overflow only from a full tank; the supply never beats demand or the treatment unit
    assert (result.overflow_m3 >= 0).all()
    assert (result.volume_m3[result.overflow_m3 > 0] == case["capacity"]).all()
    assert (result.supply_m3 >= 0).all()
    assert (result.supply_m3 <= case["demand"] + 1e-12).all()
    assert (result.supply_m3 <= case["max_supply"] + 1e-12).all()


def _year_of_tank(seed: int, step_s: int) -> list[DeviceDay]:
    return _run(SITE, seed, dt.date(2025, 1, 1), 365, step_s)["rw-controller"]


@settings(max_examples=4, deadline=None)
@given(seed=SEEDS, step_s=st.sampled_from([300, 900, 1800]))
def test_site_model_tank_mass_balance_closes_every_day_of_a_year(seed: int, step_s: int) -> None:
    facility = _rainwater_facility()
    previous = facility.tank_capacity_m3 * facility.simulation.initial_level_pct / 100
    days = _year_of_tank(seed, step_s)
    assert len(days) == 365
    for day in days:
        truth = day.truth
        end = truth["storage_m3_end"]
        balance = previous + truth["inflow_m3"] - truth["supply_m3"] - truth["overflow_m3"]
        assert balance == pytest.approx(end, abs=1e-6), dt.datetime.fromtimestamp(day.time_ns[0] / NS)
        previous = end
    # the year is not trivially balanced: water came in and was used
    assert sum(d.truth["inflow_m3"] for d in days) > 0
    assert sum(d.truth["supply_m3"] for d in days) > 0


@settings(max_examples=4, deadline=None)
@given(seed=SEEDS, step_s=st.sampled_from([300, 900, 1800]))
def test_site_model_tank_level_stays_within_zero_and_capacity(seed: int, step_s: int) -> None:
    capacity = _rainwater_facility().tank_capacity_m3
    days = _year_of_tank(seed, step_s)
    storage = np.array([d.truth["storage_m3_end"] for d in days])
    assert (storage >= 0).all()
    assert (storage <= capacity).all()
    _, level_pct = _series(days, "level_pct")
    assert (level_pct >= 0).all()
    assert (level_pct <= 100).all()


# -- totalizers ------------------------------------------------------------------------------------


def _totalizers(day: DeviceDay) -> list[str]:
    return [q.name for q in day.profile.quantities if q.totalizer]


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, month=st.integers(1, 12), step_s=st.sampled_from([60, 300, 900]))
def test_totalizers_never_decrease_over_a_month_without_faults(seed: int, month: int, step_s: int) -> None:
    assert all(not d.faults for _, c in SITE.communities() for _, d in c.devices())
    devices = _run(SITE, seed, dt.date(2025, month, 1), 30, step_s)
    checked = 0
    for device, days in devices.items():
        for quantity in _totalizers(days[0]):
            times, values = _series(days, quantity)
            assert (np.diff(times) > 0).all(), (device, quantity)
            drops = np.flatnonzero(np.diff(values) < 0)
            assert drops.size == 0, (device, quantity, drops[:5], values[drops[:1]], values[drops[:1] + 1])
            checked += 1
    assert checked >= 10  # every totalizer of every device of the example was looked at
    _, master = _series(devices["master-meter"], "volume_m3")
    assert master[-1] > master[0]


@settings(max_examples=12, deadline=None)
@given(
    seed=SEEDS,
    target=st.sampled_from(
        [
            ("master-meter", "volume_m3"),
            ("rw-makeup-meter", "volume_m3"),
            ("rw-controller", "supply_m3"),
            ("river-pump-1", "runtime_h"),
        ]
    ),
    reset_day=st.integers(1, 7),
    reset_hour=st.integers(0, 23),
    new_reading=st.floats(0.0, 50.0),
)
def test_reset_fault_makes_the_totalizer_drop_exactly_once_at_the_replacement(
    seed: int, target: tuple[str, str], reset_day: int, reset_hour: int, new_reading: float
) -> None:
    device, quantity = target
    start = dt.date(2025, 7, 1)
    at = dt.datetime.combine(start + dt.timedelta(days=reset_day), dt.time(reset_hour), SHANGHAI)
    site = _with_faults(
        SITE, device, [Reset(kind="reset", quantity=quantity, start=at, new_reading=new_reading)]
    )
    days = _run(site, seed, start, 10, 300)[device]
    clean_days = _run(SITE, seed, start, 10, 300)[device]
    times, shown = _series(days, quantity)
    _, clean = _series(clean_days, quantity)
    at_ns = int(at.timestamp()) * NS
    first = int(np.argmax(times >= at_ns))
    assert times[first] >= at_ns > times[first - 1]
    assert np.flatnonzero(np.diff(shown) < 0).tolist() == [first - 1]
    assert shown[first] == pytest.approx(new_reading, abs=1e-9)
    # before the replacement the old meter, after it the new one counting the same water
    np.testing.assert_array_equal(shown[:first], clean[:first])
    np.testing.assert_allclose(np.diff(shown)[first:], np.diff(clean)[first:], atol=1e-9)
    # the other totalizers of the device are untouched
    for other in _totalizers(days[0]):
        if other != quantity:
            assert (np.diff(_series(days, other)[1]) >= 0).all(), other


@settings(max_examples=12, deadline=None)
@given(seed=SEEDS, before_wrap=st.integers(1, 100_000), month=st.integers(1, 12))
def test_rollover_fault_wraps_the_register_exactly_once(seed: int, before_wrap: int, month: int) -> None:
    # ul-wm100's volume is a u32 count of litres (scale 0.001 m3): it wraps at 2**32 * 0.001 m3.
    wrap = 2**32 * 0.001
    site = _with_faults(
        SITE, "master-meter", [Rollover(kind="rollover", quantity="volume_m3", before_wrap=before_wrap)]
    )
    start = dt.date(2025, month, 1)
    _, shown = _series(_run(site, seed, start, 5, 300)["master-meter"], "volume_m3")
    _, clean = _series(_run(SITE, seed, start, 5, 300)["master-meter"], "volume_m3")
    assert shown[0] == pytest.approx(wrap - before_wrap * 0.001, abs=1e-6)
    assert ((shown >= 0) & (shown < wrap)).all()
    drops = np.flatnonzero(np.diff(shown) < 0)
    assert len(drops) == 1
    i = drops[0]
    # DOMAIN.md: across a rollover, delta = new + (max - old); it is what the clean meter counted
    assert shown[i + 1] + (wrap - shown[i]) == pytest.approx(clean[i + 1] - clean[i], abs=1e-6)
    np.testing.assert_allclose(np.mod(np.diff(shown), wrap), np.diff(clean), atol=1e-6)


# -- runoff and first flush ------------------------------------------------------------------------


@st.composite
def rain_event(draw: st.DrawFn, step_s: int) -> np.ndarray:
    """Rain (mm per step) of one event: consecutive wet steps, dry before and after."""
    steps = draw(st.integers(1, min(48, 86400 // step_s)))
    mm = draw(st.lists(st.floats(0.01, 20.0), min_size=steps, max_size=steps))
    before = draw(st.integers(0, 10))
    after = draw(st.integers(0, 10))
    return np.concatenate([np.zeros(before), mm, np.zeros(after)])


@FAST
@given(
    data=st.data(),
    step_s=st.sampled_from(COMMON_STEPS),
    area=st.floats(1.0, 50_000.0),
    psi=st.floats(0.05, 1.0),
    delta=st.floats(0.0, 5.0),
)
def test_runoff_of_one_event_follows_the_domain_formula(
    data: st.DataObject, step_s: int, area: float, psi: float, delta: float
) -> None:
    rain = data.draw(rain_event(step_s))
    p = rain.sum()
    to_tank, diverted = physics.runoff_m3(rain, area, psi, delta, physics.FirstFlushState(), step_s)
    # DOMAIN.md: Q = A * psi * max(P - delta, 0) / 1000; the first flush takes the rest
    assert to_tank.sum() == pytest.approx(area * psi * max(p - delta, 0) / 1000, rel=1e-9, abs=1e-9)
    assert diverted.sum() == pytest.approx(area * psi * min(p, delta) / 1000, rel=1e-9, abs=1e-9)
    assert (to_tank >= 0).all()
    assert (diverted >= 0).all()
    np.testing.assert_allclose(to_tank + diverted, area * psi * rain / 1000, rtol=1e-12, atol=1e-12)


def _two_events(data: st.DataObject, gap_steps: int) -> tuple[np.ndarray, float, float]:
    first = data.draw(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6))
    second = data.draw(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6))
    rain = np.concatenate([np.zeros(data.draw(st.integers(0, 3))), first, np.zeros(gap_steps), second])
    return rain, float(sum(first)), float(sum(second))


def _runoff_in_two_calls(
    rain: np.ndarray, split: int, area: float, psi: float, delta: float, step_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """The same rain fed as two consecutive calls (two days), the state carried between them."""
    state = physics.FirstFlushState()
    a_tank, a_div = physics.runoff_m3(rain[:split], area, psi, delta, state, step_s)
    b_tank, b_div = physics.runoff_m3(rain[split:], area, psi, delta, state, step_s)
    return np.concatenate([a_tank, b_tank]), np.concatenate([a_div, b_div])


@FAST
@given(
    data=st.data(),
    # events of several wet steps; steps longer than the gap are test_dry_gap_shorter_than_event_gap's
    step_s=st.sampled_from([s for s in ALL_STEPS if s <= physics.EVENT_GAP_S]),
    delta=st.floats(0.5, 5.0),
    extra_gap_s=st.integers(0, 3 * 86400),
)
def test_dry_gap_of_at_least_event_gap_starts_a_new_first_flush(
    data: st.DataObject, step_s: int, delta: float, extra_gap_s: int
) -> None:
    gap_steps = -(-(physics.EVENT_GAP_S + extra_gap_s) // step_s)  # ceil: the gap is >= EVENT_GAP_S
    rain, p1, p2 = _two_events(data, gap_steps)
    split = data.draw(st.integers(0, len(rain)))
    area, psi = 1000.0, 0.9
    to_tank, diverted = _runoff_in_two_calls(rain, split, area, psi, delta, step_s)
    factor = area * psi / 1000
    assert diverted.sum() == pytest.approx(factor * (min(p1, delta) + min(p2, delta)), rel=1e-9)
    assert to_tank.sum() == pytest.approx(factor * (max(p1 - delta, 0) + max(p2 - delta, 0)), rel=1e-9)


@settings(max_examples=10, deadline=None)
@given(
    first=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6),
    second=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6),
    delta=st.floats(0.5, 5.0),
    split_share=st.floats(0.0, 1.0),
)
def test_dry_gap_shorter_than_event_gap_keeps_one_event(
    first: list[float], second: list[float], delta: float, split_share: float
) -> None:
    # For every step length the simulators accept, the longest whole number of dry steps that is still
    # shorter than EVENT_GAP_S (none at all for steps longer than EVENT_GAP_S): the rain stays one event.
    area, psi = 1000.0, 0.9
    factor = area * psi / 1000
    p = sum(first) + sum(second)
    split_events: dict[int, tuple[float, float]] = {}
    for step_s in ALL_STEPS:
        gap_steps = (physics.EVENT_GAP_S - 1) // step_s
        assert gap_steps * step_s < physics.EVENT_GAP_S
        rain = np.concatenate([first, np.zeros(gap_steps), second])
        split = round(split_share * len(rain))
        to_tank, diverted = _runoff_in_two_calls(rain, split, area, psi, delta, step_s)
        if not (
            diverted.sum() == pytest.approx(factor * min(p, delta), rel=1e-9)
            and to_tank.sum() == pytest.approx(factor * max(p - delta, 0), rel=1e-9)
        ):
            split_events[step_s] = (gap_steps * step_s, float(diverted.sum() / factor))
    # step -> (dry gap in s, first flush diverted in mm); expected: none, each diverts min(P, delta) once
    assert split_events == {}


@FAST
@given(data=st.data(), step_s=st.sampled_from(COMMON_STEPS), delta=st.floats(0.0, 5.0))
def test_runoff_split_across_calls_equals_one_call(data: st.DataObject, step_s: int, delta: float) -> None:
    n = data.draw(st.integers(1, 3 * 86400 // step_s))
    rng = np.random.default_rng(data.draw(SEEDS))
    rain = np.where(rng.random(n) < data.draw(st.floats(0.0, 0.3)), rng.gamma(0.8, 2.0, n), 0.0)
    split = data.draw(st.integers(0, n))
    whole = physics.runoff_m3(rain, 2500.0, 0.8, delta, physics.FirstFlushState(), step_s)
    parts = _runoff_in_two_calls(rain, split, 2500.0, 0.8, delta, step_s)
    np.testing.assert_allclose(parts[0], whole[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(parts[1], whole[1], rtol=1e-12, atol=1e-15)


# -- rainfall --------------------------------------------------------------------------------------

RAIN_YEARS = 200


def _rain_years() -> np.ndarray:
    """200 years of daily rain, year k from a generator seeded with k."""
    return np.array(
        [physics.daily_rainfall_mm(np.random.default_rng(k), YEAR_MONTHS, False) for k in range(RAIN_YEARS)]
    )


@pytest.fixture(scope="module")
def rain_years() -> np.ndarray:
    return _rain_years()


def test_mean_annual_rainfall_is_calibrated_to_shanghai(rain_years: np.ndarray) -> None:
    annual = rain_years.sum(axis=1)
    low, high = physics.ANNUAL_MEAN_RANGE_MM
    assert low <= annual.mean() <= high
    # DOMAIN.md: the wettest months are June-September; they hold more than half of the year's rain
    summer = rain_years[:, (YEAR_MONTHS >= 6) & (YEAR_MONTHS <= 9)].sum(axis=1)
    assert summer.mean() > annual.mean() / 2
    monthly = np.array([rain_years[:, m == YEAR_MONTHS].sum(axis=1).mean() for m in range(1, 13)])
    assert set(np.argsort(monthly)[-3:] + 1) <= {6, 7, 8, 9}


def test_every_simulated_rain_year_lies_within_the_recorded_span(rain_years: np.ndarray) -> None:
    annual = rain_years.sum(axis=1)
    low, high = physics.ANNUAL_SINGLE_YEAR_RANGE_MM
    outside = {k: round(float(a), 1) for k, a in enumerate(annual) if not low <= a <= high}
    assert outside == {}


@FAST
@given(seed=SEEDS, wet_yesterday=st.booleans(), month=st.integers(1, 12))
def test_rain_days_are_dry_or_at_least_a_tenth_of_a_millimetre(
    seed: int, wet_yesterday: bool, month: int
) -> None:
    months = np.full(200, month, dtype=np.int64)
    rain = physics.daily_rainfall_mm(np.random.default_rng(seed), months, wet_yesterday)
    assert ((rain == 0) | (rain >= 0.1)).all()
    assert np.isfinite(rain).all()


# -- car washes ------------------------------------------------------------------------------------


def _wash_days(seed: int, rate: float, days: int) -> list[physics.WashEvents]:
    rng = np.random.default_rng(seed)
    return [physics.car_washes(rng, rate, physics.MICRO_WASH_L) for _ in range(days)]


@FAST
@given(seed=SEEDS, rate=st.floats(3.0, 40.0))
def test_micro_water_washes_use_one_to_one_and_a_half_litres(seed: int, rate: float) -> None:
    days = _wash_days(seed, rate, 300)
    fresh = np.concatenate([d.fresh_l for d in days])
    recycled = np.concatenate([d.recycled_l for d in days])
    low, high = physics.MICRO_WASH_L_PER_CAR
    assert (low, high) == (1.0, 1.5)  # DOMAIN.md: 1-1.5 L per car claimed for micro-water washing
    assert low <= fresh.mean() <= high
    assert (fresh > 0).all()
    # the default recycled share is 30 % of all the water a wash uses
    np.testing.assert_allclose(recycled / (fresh + recycled), 0.3)
    for d in days:
        assert ((d.offset_s >= 8 * 3600) & (d.offset_s <= 18 * 3600)).all()
        assert (np.diff(d.offset_s) >= 0).all()


@FAST
@given(seed=SEEDS, rate=st.floats(0.5, 40.0))
def test_wash_counts_are_poisson_like(seed: int, rate: float) -> None:
    days = 400
    counts = np.array([len(d.offset_s) for d in _wash_days(seed, rate, days)])
    # the mean within 4.5 standard errors of the rate, the variance close to the mean (Poisson)
    assert abs(counts.mean() - rate) <= 4.5 * np.sqrt(rate / days)
    assert 0.7 <= counts.var(ddof=1) / counts.mean() <= 1.35


# -- households ------------------------------------------------------------------------------------


def _household_year(seed: int, population: int, step_s: int, lpcd: float = 150.0) -> np.ndarray:
    hour = (np.arange(86400 // step_s) * step_s // 3600).astype(np.int64)
    return np.array(
        [
            physics.household_m3(np.random.default_rng([seed, day]), hour, population, lpcd, step_s)
            for day in range(365)
        ]
    )


@FAST
@given(seed=SEEDS, population=st.integers(20, 20_000), step_s=st.sampled_from([60, 300, 900, 1800, 3600]))
def test_household_use_averages_within_zone_3_range(seed: int, population: int, step_s: int) -> None:
    year = _household_year(seed, population, step_s)
    lpcd = year.sum() * 1000 / population / 365
    low, high = physics.HOUSEHOLD_LPCD
    assert (low, high) == (120.0, 180.0)  # DOMAIN.md: GB/T 50331 zone 3, 120-180 L/person/day
    assert low <= lpcd <= high
    assert (year >= 0).all()


@FAST
@given(seed=SEEDS, population=st.integers(20, 20_000), step_s=st.sampled_from([60, 300, 900, 1800, 3600]))
def test_household_night_minimum_is_never_zero(seed: int, population: int, step_s: int) -> None:
    year = _household_year(seed, population, step_s)
    hour = np.arange(86400 // step_s) * step_s // 3600
    night = year[:, (hour >= 2) & (hour <= 4)]
    assert night.size > 0
    assert (night.min(axis=1) > 0).all()
    # the night is the quietest time of day, but water still flows (a never-zero night flow is normal)
    assert night.mean() < year.mean()
