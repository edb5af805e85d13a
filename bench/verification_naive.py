"""A straightforward pure-Python verification, the baseline of `bench/bench_verification.py`.

The same checks as `verification/engine.py` and `verification/checks.py`, written the way one would
without numpy: plain loops over lists and dicts, `datetime` for the calendar, `statistics.median` and
a sorted list for the percentiles. It takes what a pure-Python reader of InfluxDB's JSON would hold
(per device a list of int nanosecond timestamps and per field a list of numbers or None) and computes:

- per totalizer: consumption from the readings (sorted, duplicated timestamps counted once, growth as
  is, a wrap above 90 % -> below 10 % of the register's rollover value adds the rollover, any other drop
  is a reset counting the new reading), the daily sums (an interval ending at t belongs to the local day
  of t - 1 ns), data sufficiency (readings per day against 86400 / interval, with the interval being the
  poll interval or the data's median spacing when coarser; valid days, month shares, gaps), spikes
  (median + 3 x IQR of the valid days, linear percentiles as numpy's), the findings of the edit log;
- per facility: the rainwater checks (stuck supply runs, supply vs treated, treatment capacity, runoff
  with first flush per wet run, the 1/7/30/365-day window bound with the tank's daily storage from its
  level, dry spells, the tank mass balance), the river pump's volume vs runtime and energy, rainy-day
  irrigation, the car-wash litres per wash, the master meter's stuck runs, per-capita use, sub-meters;
- the claims' verdicts with the same rules, and the report's monthly totals, daily coverage and the
  per-wash histogram.

Local days are computed with integer arithmetic on the timestamps (Asia/Shanghai is UTC+8 all year),
as any careful implementation would for millions of readings; `datetime` gives months and dates.
The thresholds are imported from the engine (configuration, not code), so both apply the same rules.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from devices.profile import DeviceKind, find_profile
from devices.registers import ROLLOVER_BAND, rollover_values
from jieshui.inventory import Community, Facility, FacilityKind, Measure, Site
from verification.checks import DAY_VALID_SHARE, PERIOD_VALID_SHARE
from verification.engine import (
    ACCURACY,
    INTEGRITY_CODES,
    MEASURED_BY,
    PER_CAPITA_RANGE,
    PER_WASH_EVIDENCE_BELOW_L,
    PUMP_KWH_PER_M3,
    RAIN_DRIVEN,
    RAINY_DAY_MM,
    RUNOFF_TOLERANCE,
    TREATMENT_MARGIN,
    WASH_BINS,
)

NS = 10**9
DAY_NS = 86400 * NS
OFFSET_NS = 8 * 3600 * NS


@dataclass
class PySeries:
    """One device's readings as plain Python lists (None where the server returned null)."""

    device: str
    kind: str
    profile: str
    interval_s: float
    time_ns: list[int]
    columns: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class Year:
    """The reporting year in Asia/Shanghai days, with the month of every day."""

    year: int
    start: dt.date = field(init=False)
    days: int = field(init=False)
    first_day: int = field(init=False)
    months: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.start = dt.date(self.year, 1, 1)
        self.days = (dt.date(self.year + 1, 1, 1) - self.start).days
        self.first_day = (self.start - dt.date(1970, 1, 1)).days
        self.months = [(self.start + dt.timedelta(days=i)).month for i in range(self.days)]

    def date(self, i: int) -> str:
        return (self.start + dt.timedelta(days=i)).isoformat()


@dataclass
class Meter:
    """A totalizer's daily use and audit."""

    device: str
    quantity: str
    readings: int
    daily: list[float]
    counts: list[int]
    expected_per_day: float
    valid: list[bool]
    valid_share: float
    month_shares: dict[int, float]
    gaps: int
    sufficient: bool
    total: float
    spike_days: list[int]
    excluded: float
    resets: int
    rollovers: int
    duplicates: int
    findings: list[str]
    flat_runs: list[tuple[int, int]] = field(default_factory=list)


def _percentile(ordered: list[float], q: float) -> float:
    """numpy's default ('linear') percentile of an already sorted list."""
    pos = q / 100 * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def _flat_runs(values: list[float], moving: list[bool], min_days: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    start = None
    n = len(values)
    for i in range(n + 1):
        stuck = i < n and values[i] <= 0 and moving[i]
        if stuck and start is None:
            start = i
        elif not stuck and start is not None:
            if i - start >= min_days:
                runs.append((start, i))
            start = None
    return runs


def meter(series: PySeries, quantity: str, year: Year) -> Meter:
    """Consumption, daily sums, data sufficiency and the audit of one totalizer."""
    col = series.columns[quantity]
    times: list[int] = []
    values: list[float] = []
    for t, v in zip(series.time_ns, col, strict=True):
        if v is not None:
            times.append(t)
            values.append(v)
    rollover = rollover_values(find_profile(series.profile)).get(quantity)
    days, first = year.days, year.first_day

    # consumption: sort by time (stable), first reading of a timestamp, deltas with wrap/reset rules
    pairs = sorted(zip(times, values, strict=True), key=lambda p: p[0])
    daily = [0.0] * days
    resets = rollovers = duplicates = 0
    prev_t: int | None = None
    prev_v = 0.0
    for t, v in pairs:
        if prev_t is None:
            prev_t, prev_v = t, v
            continue
        if t == prev_t:
            duplicates += 1
            continue
        if v >= prev_v:
            d = v - prev_v
        elif rollover and prev_v >= rollover * (1 - ROLLOVER_BAND) and v <= rollover * ROLLOVER_BAND:
            d = v + rollover - prev_v
            rollovers += 1
        else:
            d = v
            resets += 1
        i = (t - 1 + OFFSET_NS) // DAY_NS - first
        if 0 <= i < days:
            daily[i] += d
        prev_t, prev_v = t, v
    if len(pairs) < 2:
        duplicates = 0

    # data sufficiency: readings per local day (readings before the year count on its first day)
    counts = [0] * days
    for t in times:
        i = (t - 1 + OFFSET_NS) // DAY_NS - first
        if i < days:
            counts[max(i, 0)] += 1
    interval = series.interval_s
    if len(times) > 2:
        spacing = statistics.median([b - a for a, b in itertools.pairwise(times)]) / NS
        interval = max(interval, spacing)
    if series.kind == DeviceKind.CAR_WASH:
        interval = 43200.0
    expected = 86400 / interval
    valid = [c >= DAY_VALID_SHARE * expected for c in counts]
    per_month: dict[int, list[int]] = {}
    for m, ok in zip(year.months, valid, strict=True):
        tally = per_month.setdefault(m, [0, 0])
        tally[0] += ok
        tally[1] += 1
    month_shares = {m: ok / n for m, (ok, n) in sorted(per_month.items())}
    ordered_t = sorted(times)
    gaps = sum(1 for a, b in itertools.pairwise(ordered_t) if b - a > 2 * interval * NS)
    share = sum(valid) / days if days else 0.0
    sufficient = share >= PERIOD_VALID_SHARE and all(s >= PERIOD_VALID_SHARE for s in month_shares.values())

    # spikes: median + 3 IQR over the valid days (not for rain-driven totalizers)
    spike_days: list[int] = []
    valid_idx = [i for i in range(days) if valid[i]]
    if valid_idx and quantity not in RAIN_DRIVEN and len(valid_idx) >= 7:
        ordered = sorted(daily[i] for i in valid_idx)
        q1, med, q3 = (_percentile(ordered, q) for q in (25, 50, 75))
        limit = max(med + 3 * (q3 - q1), med * 1.5 + 1e-9)
        spike_days = [i for i in valid_idx if daily[i] > limit]
    excluded = sum(daily[i] for i in spike_days)
    total = math.fsum(daily)
    findings: list[str] = []
    if not sufficient:
        findings.append("insufficient_data")
    if resets:
        findings.append("meter_reset")
    if total > 0 and excluded / total > 0.1:
        findings.append("estimated_over_10pct")
    return Meter(
        series.device, quantity, len(times), daily, counts, expected, valid, share, month_shares, gaps,
        sufficient, total, spike_days, excluded, resets, rollovers, duplicates, findings,
    )  # fmt: skip


def daily_storage(series: PySeries, capacity: float, year: Year) -> list[float]:
    """Stored volume at the end of each local day (its last reading), carried over days without one."""
    out: list[float | None] = [None] * year.days
    for t, level in zip(series.time_ns, series.columns["level_pct"], strict=True):
        if level is None:
            continue
        i = (t - 1 + OFFSET_NS) // DAY_NS - year.first_day
        if 0 <= i < year.days:
            out[i] = level / 100 * capacity
    known = [v for v in out if v is not None]
    last = sum(known) / len(known) if known else 0.0
    filled: list[float] = []
    for v in out:
        if v is not None:
            last = v
        filled.append(last)
    return filled


def runoff(rain: list[float], catchments: list[tuple[float, float, float]]) -> list[float]:
    out = [0.0] * len(rain)
    for area, psi, flush in catchments:
        remaining = flush
        for i, p in enumerate(rain):
            if p <= 0:
                remaining = flush
                continue
            diverted = min(p, remaining)
            remaining -= diverted
            out[i] += area * psi * (p - diverted) / 1000.0
    return out


def max_window_excess(supply: list[float], bound: list[float]) -> tuple[float, int, int]:
    best = (-math.inf, 0, 0)
    csum = [0.0]
    for s, b in zip(supply, bound, strict=True):
        csum.append(csum[-1] + (s - b))
    for w in (1, 7, 30, 365):
        if w > len(supply):
            continue
        top, at = -math.inf, 0
        for i in range(len(csum) - w):
            x = csum[i + w] - csum[i]
            if x > top:
                top, at = x, i
        if top > best[0]:
            best = (top, at, w)
    return best


Meters = dict[tuple[str, str], Meter]


def _facility_meter(
    facility: Facility, meters: Meters, quantity: str, kind: str | None = None
) -> Meter | None:
    for device in facility.devices:
        if kind is not None and find_profile(device.profile).kind != kind:
            continue
        if (device.id, quantity) in meters:
            return meters[(device.id, quantity)]
    return None


def _rainwater(
    community: Community, facility: Facility, data: dict[str, PySeries], meters: Meters, year: Year,
    flags: list[str], measured: dict[str, float],
) -> None:  # fmt: skip
    supply = _facility_meter(facility, meters, "supply_m3", DeviceKind.RAINWATER_SYSTEM)
    if supply is None:
        return
    device, days = supply.device, year.days
    makeup = meters.get((device, "makeup_m3"))
    treated = meters.get((device, "treated_m3"))
    runtime = meters.get((device, "treatment_runtime_h"))
    rain = meters.get((device, "rain_mm"))
    capacity = facility.tank_capacity_m3 or 0.0
    measured["reuse_m3"] = supply.total
    if makeup is not None:
        measured["makeup_m3"] = makeup.total
        measured["net_saving_m3"] = supply.total - makeup.total
        demand = [s + m for s, m in zip(supply.daily, makeup.daily, strict=True)]
        total_demand = math.fsum(demand)
        measured["efficiency"] = supply.total / total_demand if total_demand else 0.0
        wet = [makeup.daily[i] <= 1e-6 for i in range(days) if demand[i] > 0]
        measured["reliability"] = sum(wet) / len(wet) if wet else 0.0
    if runtime is not None:
        moving = [r > 0 and not math.isnan(s) for r, s in zip(runtime.daily, supply.daily, strict=True)]
        for run in _flat_runs(supply.daily, moving, 3):
            supply.flat_runs.append(run)
            flags.append("stuck_meter")
    if treated is not None:
        if supply.total > treated.total * 1.05 + 1.0:
            flags.append("supply_exceeds_treated")
        if runtime is not None and facility.rated_flow_m3h:
            capacity_m3 = TREATMENT_MARGIN * facility.rated_flow_m3h * runtime.total
            measured["treatment_capacity_m3"] = capacity_m3
            if treated.total > capacity_m3 + 1.0:
                flags.append("treatment_capacity")
    if rain is None:
        return
    by_id = {c.id: c for c in community.catchments}
    parts = [(by_id[c].area_m2, by_id[c].psi, by_id[c].first_flush_mm) for c in facility.catchments]
    run_off = runoff(rain.daily, parts)
    measured["runoff_m3"] = math.fsum(run_off)
    measured["rain_mm"] = rain.total
    storage = daily_storage(data[device], capacity, year) if "level_pct" in data[device].columns else None
    if storage is not None:
        d_storage = [0.0] + [storage[i] - storage[i - 1] for i in range(1, days)]
    else:
        d_storage = [0.0] * days
    slack = capacity / max(days, 1)
    margin = 0.1 * capacity / 365
    bound = [
        (1 + RUNOFF_TOLERANCE) * run_off[i] - d_storage[i] + (slack if i == 0 else 0.0) + margin
        for i in range(days)
    ]
    excess, _, _ = max_window_excess(supply.daily, bound)
    measured["rainfall_bound_excess_m3"] = excess
    if excess > 0.1 * capacity:
        flags.append("exceeds_rainfall")
    measured["rainfall_bound_m3"] = (1 + RUNOFF_TOLERANCE) * math.fsum(run_off) + capacity
    net = [s - (makeup.daily[i] if makeup is not None else 0.0) for i, s in enumerate(supply.daily)]
    worst = 0.0
    for start, end in _flat_runs(rain.daily, [True] * days, 3):
        worst = max(worst, sum(net[start:end]))
    measured["dry_spell_max_net_supply_m3"] = worst
    if worst > capacity * 1.02 + 1.0:
        flags.append("dry_spell_bound")
    inflow = meters.get((device, "inflow_m3"))
    overflow = meters.get((device, "overflow_m3"))
    if storage is not None and inflow is not None and overflow is not None:
        residual = 0.0
        for i in range(1, days):
            residual += abs(d_storage[i] - (inflow.daily[i] - supply.daily[i] - overflow.daily[i]))
        measured["tank_balance_residual_m3"] = residual
        through = inflow.total or 1.0
        if residual > 0.1 * through:
            flags.append("tank_balance")


def _river(
    facility: Facility, meters: Meters, rain_daily: list[float], flags: list[str], measured: dict[str, float]
) -> None:
    volume = _facility_meter(facility, meters, "volume_m3", DeviceKind.RIVER_PUMP)
    if volume is None:
        return
    device = volume.device
    measured["river_water_m3"] = volume.total
    runtime = meters.get((device, "runtime_h"))
    if runtime is not None and facility.rated_flow_m3h:
        expected = facility.rated_flow_m3h * runtime.total
        measured["expected_from_runtime_m3"] = expected
        if expected and abs(volume.total - expected) / expected > 0.15:
            flags.append("pump_volume_vs_runtime")
    energy = meters.get((device, "energy_kwh"))
    if energy is not None and volume.total > 0:
        ratio = energy.total / volume.total
        measured["pump_kwh_per_m3"] = ratio
        if not PUMP_KWH_PER_M3[0] <= ratio <= PUMP_KWH_PER_M3[1]:
            flags.append("pump_energy")
    rainy = sum(1 for r, v in zip(rain_daily, volume.daily, strict=True) if r > RAINY_DAY_MM and v > 0)
    measured["irrigation_on_rainy_days"] = float(rainy)
    if rainy:
        flags.append("rainy_day_irrigation")


def _car_wash(
    community: Community, facility: Facility, data: dict[str, PySeries], meters: Meters, year: Year,
    flags: list[str], measured: dict[str, float],
) -> None:  # fmt: skip
    unit = next((d for d in facility.devices if find_profile(d.profile).kind == DeviceKind.CAR_WASH), None)
    if unit is None or unit.id not in data:
        return
    litres = [x for x in data[unit.id].columns.get("wash_l", []) if x is not None]
    measured["washes"] = float(len(litres))
    if litres:
        measured["l_per_wash"] = math.fsum(litres) / len(litres)
    fresh = meters.get((unit.id, "fresh_m3"))
    count = meters.get((unit.id, "wash_count"))
    if fresh is not None and count is not None and count.total > 0:
        measured["l_per_wash_totalizer"] = fresh.total * 1000 / count.total
        if litres and abs(measured["l_per_wash_totalizer"] - measured["l_per_wash"]) > (
            0.1 * measured["l_per_wash"] + 0.05
        ):
            flags.append("wash_totalizer_disagrees")
    if community.parking_spaces and len(litres) > community.parking_spaces * year.days:
        flags.append("implausible_wash_count")


def _master(
    community: Community, facility: Facility, meters: Meters, year: Year, flags: list[str],
    measured: dict[str, float], site_checks: list[str],
) -> None:  # fmt: skip
    master = _facility_meter(facility, meters, "volume_m3")
    if master is None:
        return
    stuck = _flat_runs(master.daily, [True] * year.days, 2)
    valid = [True] * year.days
    for start, end in stuck:
        master.flat_runs.append((start, end))
        flags.append("stuck_meter")
        for i in range(start, end):
            valid[i] = False
    n = max(sum(valid), 1)
    used = math.fsum(x for x, ok in zip(master.daily, valid, strict=True) if ok)
    lpcd = used * 1000 / community.population / n
    measured["master_m3"] = master.total
    measured["per_capita_lpd"] = lpcd
    if not PER_CAPITA_RANGE[0] <= lpcd <= PER_CAPITA_RANGE[1]:
        site_checks.append("per_capita_out_of_range")
    wash_devices = {d.id for f, d in community.devices() if f.kind is FacilityKind.CAR_WASH}
    sub = 0.0
    for (dev, q), m in meters.items():
        if q == "makeup_m3" or (q == "volume_m3" and dev != master.device and dev in wash_devices):
            sub += m.total
    measured["sub_meters_m3"] = sub
    if sub > master.total * 1.02:
        site_checks.append("sub_meters_exceed_master")


def _verdict(
    claim: Any, community: Community, year: Year, meters: Meters, flags: dict[str, list[str]],
    by_facility: dict[str, dict[str, float]],
) -> dict[str, Any]:  # fmt: skip
    facility = next(f for f in community.facilities if f.id == claim.facility)
    measured = by_facility.get(facility.id, {})
    reasons = list(flags.get(facility.id, []))
    quantity, key, more_is_better = MEASURED_BY[claim.measure]
    devices = {d.id: d for d in facility.devices}
    found = next((m for (dev, q), m in meters.items() if q == quantity and dev in devices), None)
    out: dict[str, Any] = {"id": claim.id, "verdict": "", "measured": None, "fraction": None}
    if found is None or key not in measured:
        return {**out, "verdict": "insufficient_data", "reasons": [*reasons, "no_meter_data"]}
    reasons += found.findings
    if not found.sufficient:
        return {**out, "verdict": "insufficient_data", "reasons": reasons}
    if (
        claim.measure is Measure.CAR_WASH_WATER_PER_CAR
        and claim.value < PER_WASH_EVIDENCE_BELOW_L
        and measured.get("washes", 0) == 0
    ):
        return {**out, "verdict": "insufficient_data", "reasons": [*reasons, "needs_per_wash_evidence"]}
    per_day = claim.measure is Measure.RAINWATER_REUSE_PER_DAY
    value = measured[key] / year.days if per_day else measured[key]
    unit = find_profile(devices[found.device].profile).quantity[quantity].unit
    u = ACCURACY.get(unit, 0.02) + (1 - round(found.valid_share, 4))
    fraction = value / claim.value if more_is_better else (claim.value / value if value else 0.0)
    bound = measured.get("rainfall_bound_m3")
    rain_claim = claim.measure in (Measure.RAINWATER_REUSE_PER_DAY, Measure.RAINWATER_REUSE_PER_YEAR)
    if bound is not None and rain_claim and (claim.value * year.days if per_day else claim.value) > bound:
        reasons.append("claim_exceeds_rainfall")
    if any(r in INTEGRITY_CODES for r in reasons):
        verdict = "not_verified"
    elif fraction >= 1 - u:
        verdict = "verified"
    elif fraction >= 0.5:
        verdict = "partly_verified"
        reasons.append("partly")
    else:
        verdict = "not_verified"
        reasons.append("below_half")
    return {**out, "verdict": verdict, "measured": value, "fraction": fraction, "uncertainty": u,
            "reasons": reasons}  # fmt: skip


def _charts(community: Community, data: dict[str, PySeries], meters: Meters, year: Year) -> dict[str, Any]:
    monthly: dict[str, list[float]] = {}
    coverage: dict[str, list[int]] = {}
    daily: dict[str, list[float]] = {}
    for (device_id, quantity), m in meters.items():
        sums = [0.0] * 12
        for month, use in zip(year.months, m.daily, strict=True):
            sums[month - 1] += use
        monthly[f"{device_id}.{quantity}"] = [round(x, 4) for x in sums]
        if quantity in ("rain_mm", "supply_m3", "makeup_m3"):
            daily[f"{device_id}.{quantity}"] = [round(x, 4) for x in m.daily]
        if device_id not in coverage:
            coverage[device_id] = [
                int(min(100, round(100 * c / max(m.expected_per_day, 1e-9)))) for c in m.counts
            ]
    histogram: list[int] | None = None
    for facility, device in community.devices():
        series = data.get(device.id)
        if series is None:
            continue
        if "level_pct" in series.columns and facility.tank_capacity_m3:
            storage = daily_storage(series, facility.tank_capacity_m3, year)
            daily[f"{device.id}.storage_m3"] = [round(x, 3) for x in storage]
        if "wash_l" in series.columns:
            histogram = [0] * (len(WASH_BINS) - 1)
            for litres in series.columns["wash_l"]:
                if litres is None or litres < WASH_BINS[0] or litres > WASH_BINS[-1]:
                    continue
                for b in range(len(WASH_BINS) - 1):
                    if litres < WASH_BINS[b + 1] or b == len(WASH_BINS) - 2:
                        histogram[b] += 1
                        break
    return {"monthly": monthly, "daily": daily, "coverage": coverage, "wash_histogram": histogram}


def evaluate(site: Site, community_id: str, year_number: int, data: dict[str, PySeries]) -> dict[str, Any]:
    """Every check and verdict of `verification.engine.evaluate`, in plain Python: the key figures."""
    _, community = site.community(community_id)
    year = Year(year_number)
    meters: Meters = {}
    site_checks: list[str] = []
    figures: dict[str, float] = {}
    flags: dict[str, list[str]] = {}
    by_facility: dict[str, dict[str, float]] = {}
    rain_daily = [0.0] * year.days
    for facility in community.facilities:
        fl = flags.setdefault(facility.id, [])
        measured = by_facility.setdefault(facility.id, {})
        for device in facility.devices:
            series = data.get(device.id)
            if series is None:
                continue
            for q in find_profile(device.profile).quantities:
                if q.totalizer and q.name in series.columns:
                    meters[(device.id, q.name)] = meter(series, q.name, year)
        if facility.kind is FacilityKind.RAINWATER_HARVESTING:
            _rainwater(community, facility, data, meters, year, fl, measured)
            ids = {d.id for d in facility.devices}
            rain = next((m for (dev, q), m in meters.items() if q == "rain_mm" and dev in ids), None)
            if rain is not None:
                rain_daily = rain.daily
        elif facility.kind is FacilityKind.RIVER_WATER:
            _river(facility, meters, rain_daily, fl, measured)
        elif facility.kind is FacilityKind.CAR_WASH:
            _car_wash(community, facility, data, meters, year, fl, measured)
        elif facility.kind is FacilityKind.MASTER_METER:
            _master(community, facility, meters, year, fl, measured, site_checks)
        for k, v in measured.items():
            figures[f"{facility.id}.{k}"] = round(v, 6)
    for series in data.values():
        skew = [abs(x) for x in series.columns.get("clock_skew_s", []) if x is not None]
        if skew:
            site_checks.append("clock_skew")
    claims = [
        _verdict(c, community, year, meters, flags, by_facility)
        for c in community.claims
        if c.year == year_number
    ]
    return {
        "meters": {
            f"{m.device}.{m.quantity}": {
                "readings": m.readings,
                "total": m.total,
                "valid_day_share": round(m.valid_share, 4),
                "sufficient": m.sufficient,
                "gaps": m.gaps,
                "spike_days": [year.date(i) for i in m.spike_days],
                "excluded": m.excluded,
                "flat_runs": [(year.date(a), year.date(b)) for a, b in m.flat_runs],
                "resets": m.resets,
                "rollovers": m.rollovers,
                "duplicates": m.duplicates,
                "findings": m.findings,
            }
            for m in meters.values()
        },
        "checks": site_checks,
        "figures": figures,
        "claims": claims,
        "charts": _charts(community, data, meters, year),
    }
