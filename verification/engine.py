"""Verify a community's claims for a reporting year: read its meters through store/, run the pure
checks of verification/checks.py, and give each claim a verdict with its evidence.

Reading is the only I/O (`read_community`); `evaluate` is a pure function of the series it returns,
so the checks are tested on arrays and the whole is tested on simulated years with known truth.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from devices.profile import DeviceKind, find_profile
from devices.registers import rollover_values
from evidence.meters import ACCURACY_BY_CLASS, Swap, instant_ns, meter_due, meters_in_service, swap_of
from jieshui.inventory import Claim, Community, Device, Facility, FacilityKind, Measure, Replacement, Site
from store.influx import InfluxStore, quote_ident
from verification import checks
from verification.checks import DAY_NS, NS, SHANGHAI_OFFSET_NS, Consumption
from verification.messages import say
from verification.result import (
    Charts,
    ClaimBasis,
    ClaimResult,
    Gap,
    MeterAudit,
    MeterStatus,
    ReplacementAudit,
    Text,
    Verdict,
    VerificationResult,
)

#: Meter accuracy (relative) by unit, as the simulators and the metering classes assume
#: (water class 2, tipping bucket 3 %, energy class 1, counters and clocks exact).
ACCURACY = {"m3": 0.02, "mm": 0.03, "kWh": 0.01, "h": 0.0, "": 0.0}
#: Tolerances of the physical bounds: runoff coefficients and first flush are known to +-20 %.
RUNOFF_TOLERANCE = 0.2
#: Treated volume may exceed rated flow x runtime by 10 % (DOMAIN.md).
TREATMENT_MARGIN = 1.1
#: DOMAIN.md: per-wash figures below 3 L/car must be backed by per-wash measurement.
PER_WASH_EVIDENCE_BELOW_L = 3.0
#: GB/T 50331 zone 3 (Shanghai), L/person/day.
PER_CAPITA_RANGE = (120.0, 180.0)
#: Findings that mean the data cannot support the claim: its verdict is not_verified.
INTEGRITY_CODES = frozenset(
    {
        "supply_exceeds_treated",
        "treatment_capacity",
        "exceeds_rainfall",
        "stuck_meter",
        "meter_reset",
        "evidence_changed",
        "replacement_final_below_last",
        "replacement_first_above_next",
        "replacement_no_drop",
        "wash_totalizer_disagrees",
        "pump_volume_vs_runtime",
        "claim_exceeds_rainfall",
        "dry_spell_bound",
        "tank_balance",
        "pump_energy",
    }
)
#: Findings that a claim rests on a meter past its service life or verification interval (JJG 162): its
#: readings are no longer metrologically assured, so the claim is at most partly verified.
METER_DUE_CODES = frozenset({"meter_past_service_life", "meter_calibration_overdue"})
#: Unexplained resets named in a finding (the rest are counted).
RESET_TIMES_SHOWN = 5
#: Totalizers that follow the rain: their days are skewed by nature, so the IQR spike rule (made for
#: consumption) does not apply to them.
RAIN_DRIVEN = frozenset({"rain_mm", "inflow_m3", "overflow_m3", "first_flush_m3"})
#: Plausible energy per m3 pumped by a small irrigation pump (10-60 m head, 30-80 % efficiency).
PUMP_KWH_PER_M3 = (0.02, 0.6)
#: Irrigation on days with more than this rain is suspicious (DOMAIN.md "River water").
RAINY_DAY_MM = 5.0


@dataclass
class Series:
    """One device's readings over the period: times and a column per field."""

    device: str
    kind: DeviceKind
    profile: str
    interval_s: float
    time_ns: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)


@functools.cache
def _months_of(year: int) -> np.ndarray:
    start = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - start).days
    months = np.array([(start + dt.timedelta(days=i)).month for i in range(days)])
    months.flags.writeable = False  # shared by every caller
    return months


@dataclass(frozen=True)
class Period:
    """A reporting year in Asia/Shanghai days."""

    year: int

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, 1, 1)

    @property
    def end(self) -> dt.date:
        return dt.date(self.year + 1, 1, 1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def first_day(self) -> int:
        return (self.start - dt.date(1970, 1, 1)).days

    @property
    def bounds_ns(self) -> tuple[int, int]:
        """(start, end] in UTC ns: readings stamped after local midnight of Jan 1 up to the next year's."""
        a = self.first_day * DAY_NS - SHANGHAI_OFFSET_NS
        return a, a + self.days * DAY_NS

    def months(self) -> np.ndarray:
        """The month (1-12) of each day of the year; computed once per year (every meter asks)."""
        return _months_of(self.year)

    def date(self, day_index: int) -> str:
        return (self.start + dt.timedelta(days=int(day_index))).isoformat()


def read_community(store: InfluxStore, site: Site, community_id: str, year: int) -> dict[str, Series]:
    """Every device's readings of the community over the local year, at full resolution."""
    _, community = site.community(community_id)
    period = Period(year)
    a, b = period.bounds_ns
    out: dict[str, Series] = {}
    for _, device in community.devices():
        profile = find_profile(device.profile)
        # clock_skew_s: set by the collector on readings it had to re-stamp (absent in backfilled data)
        fields = [q.name for q in profile.quantities if q.type in ("float", "int")] + ["clock_skew_s"]
        select = ", ".join(quote_ident(f) for f in fields)
        query = (
            f"SELECT {select} FROM {quote_ident(str(profile.kind))} "  # noqa: S608 (InfluxQL, quoted identifiers)
            "WHERE community = $c AND device = $d AND time > $a AND time <= $b"
        )
        found = store.query(query, params={"c": community_id, "d": device.id, "a": a, "b": b})
        if found:
            s = found[0]
            time_ns = s.time.astype(np.int64)
            columns = {f: s.values(f) for f in fields if f in s.columns}
        else:
            time_ns, columns = np.zeros(0, dtype=np.int64), {}
        out[device.id] = Series(
            device.id, profile.kind, profile.ref, device.poll_interval_s, time_ns, columns
        )
    return out


@dataclass
class _Metered:
    """A totalizer's consumption with its daily sums and audit."""

    use: Consumption
    daily: np.ndarray
    audit: MeterAudit
    sufficiency: checks.Sufficiency

    def mark_stuck(self, meter: str, start: int, end: int, period: Period) -> Text:
        """Record a stuck run in this meter's edit log; return the finding for the facility."""
        self.audit.flat_runs.append((period.date(start), period.date(end)))
        return say("stuck_meter", meter=meter, start=period.date(start), end=period.date(end))


Meters = dict[tuple[str, str], _Metered]


def _meter(
    series: Series, quantity: str, period: Period, replacements: list[Replacement] | None = None
) -> _Metered:
    col = series.columns.get(quantity)
    present = np.isfinite(col) if col is not None else np.zeros(0, dtype=bool)
    t = series.time_ns[present] if col is not None else np.zeros(0, dtype=np.int64)
    v = col[present] if col is not None else np.zeros(0)
    a, b = period.bounds_ns
    recorded = {swap_of(r): r for r in replacements or [] if r.quantity == quantity}
    recorded = {s: r for s, r in recorded.items() if a < s.time_ns <= b}
    use = checks.consumption(
        t, v, rollover_values(find_profile(series.profile)).get(quantity), sorted(recorded)
    )
    daily = checks.daily_sum(use.time_ns, use.delta, period.first_day, period.days)
    # Expected rate: the device's poll interval, or the data's own regular spacing when it was recorded
    # coarser (history backfilled at 5 minutes, a car-wash unit's 15-minute status messages).
    spacing = float(np.median(np.diff(t))) / NS if len(t) > 2 else series.interval_s
    interval = max(series.interval_s, spacing)
    if series.kind is DeviceKind.CAR_WASH:
        # An event-reporting unit: a day is valid when it reported at all (alive, it sends a status
        # message every 15 minutes as well as one per wash).
        interval = 43200.0
    suff = checks.sufficiency(t, interval, period.first_day, period.days, period.months())
    spikes = (
        checks.iqr_spikes(daily[suff.valid_days])
        if suff.valid_days.any() and quantity not in RAIN_DRIVEN
        else np.zeros(0, dtype=np.int64)
    )
    spike_days = np.flatnonzero(suff.valid_days)[spikes] if len(spikes) else spikes
    findings: list[Text] = []
    meter = f"{series.device} {quantity}"
    if not suff.sufficient:
        bad = [f"{m:02d}" for m, s in suff.month_shares.items() if s < checks.PERIOD_VALID_SHARE]
        findings.append(
            say("insufficient_data", meter=meter, share=suff.valid_share, months=", ".join(bad) or "-")
        )
    if use.resets:
        times = [_local(int(use.time_ns[i])) for i in use.resets[:RESET_TIMES_SHOWN]]
        more = len(use.resets) - RESET_TIMES_SHOWN
        shown = ", ".join(times) + (f" (+{more})" if more > 0 else "")
        findings.append(say("meter_reset", meter=meter, count=len(use.resets), times=shown))
    swap_audits = _swap_audits(meter, use, recorded, findings)
    # the edit log's part of the total: the guessed use at unexplained resets and the use credited
    # across recorded swaps (once per interval, however many swaps it holds)
    estimated = float(sum(float(use.delta[i]) for i in use.resets)) + sum(x.use for x in use.swapped)
    excluded = float(daily[spike_days].sum()) if len(spike_days) else 0.0
    total = float(daily.sum())
    if total > 0 and excluded / total > 0.1:
        findings.append(say("estimated_over_10pct", meter=meter, share=excluded / total))
    audit = MeterAudit(
        device=series.device,
        quantity=quantity,
        readings=len(t),
        expected_per_day=suff.expected_per_day,
        valid_day_share=round(suff.valid_share, 4),
        month_valid_share={f"{m:02d}": round(s, 4) for m, s in suff.month_shares.items()},
        sufficient=suff.sufficient,
        gaps=[Gap(start=_iso(a), end=_iso(b), hours=round((b - a) / NS / 3600, 2)) for a, b in suff.gaps][
            :100
        ],
        total=total,
        spike_days=[period.date(i) for i in spike_days],
        flat_runs=[],  # filled by the facility checks, which know which neighbour must have moved
        resets=len(use.resets),
        rollovers=len(use.rollovers),
        duplicates=use.duplicates,
        excluded=excluded,
        estimated=round(estimated, 6),
        findings=findings,
        reset_times=[_iso(int(use.time_ns[i])) for i in use.resets[:100]],
        replacements=swap_audits,
    )
    return _Metered(use, daily, audit, suff)


def _swap_audits(
    meter: str, use: Consumption, recorded: dict[Swap, Replacement], findings: list[Text]
) -> list[ReplacementAudit]:
    """Each recorded swap of the period with the readings around it and the use it gave; a swap the
    readings explain is evidence (`meter_replaced`), one they contradict an integrity finding."""
    held = {swap: interval for interval in use.swapped for swap in interval.swaps}
    audits: list[ReplacementAudit] = []
    for swap in sorted(recorded):
        r = recorded[swap]
        interval = held.get(swap)
        audits.append(
            ReplacementAudit(
                replaced_at=_iso(swap.time_ns),
                old_serial=r.old_serial,
                new_serial=r.new_serial,
                old_final_reading=r.old_final_reading,
                new_first_reading=r.new_first_reading,
                recorded_by=r.recorded_by,
                recorded_at=_iso(instant_ns(r.recorded_at)) if r.recorded_at else None,
                last_reading=interval.last if interval else None,
                last_reading_at=_iso(interval.last_ns) if interval else None,
                first_reading=interval.first if interval else None,
                first_reading_at=_iso(interval.first_ns) if interval else None,
                use=round(interval.use, 6) if interval else None,
            )
        )
        if interval is not None:
            findings.append(
                say("meter_replaced", meter=meter, time=_local(swap.time_ns), old=r.old_serial,
                    new=r.new_serial, final=r.old_final_reading, first=r.new_first_reading, by=r.recorded_by,
                    use=interval.use)
            )  # fmt: skip
    for interval in use.swapped:
        around = {"last": interval.last, "last_time": _local(interval.last_ns), "next": interval.first,
                  "next_time": _local(interval.first_ns)}  # fmt: skip
        for problem, swap in interval.problems:
            findings.append(
                say(f"replacement_{problem}", meter=meter, time=_local(swap.time_ns), final=swap.old_final,
                    first=swap.new_first, **around)
            )  # fmt: skip
    return audits


def _iso(t_ns: int) -> str:
    return dt.datetime.fromtimestamp(t_ns / NS, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _local(t_ns: int) -> str:
    """An instant as Asia/Shanghai wall time, to the minute (what the findings show)."""
    return dt.datetime.fromtimestamp((t_ns + SHANGHAI_OFFSET_NS) / NS, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def evaluate(
    site: Site,
    community_id: str,
    year: int,
    data: dict[str, Series],
    evidence: Mapping[str, Collection[dt.date]] | None = None,
) -> VerificationResult:
    """Run every check and give every claim of the year a verdict (pure). `evidence`: for each device
    whose daily digests were checked (evidence.jobs.check), the days whose data changed since; a claim
    resting on such a day is not verified. None: not checked."""
    district, community = site.community(community_id)
    period = Period(year)
    meters: Meters = {}
    site_checks: list[Text] = []
    figures: dict[str, float] = {}
    facility_flags: dict[str, list[Text]] = {}
    facility_measured: dict[str, dict[str, float]] = {}

    rain_daily = np.zeros(period.days)
    ctx = _Context(community, data, meters, period, site_checks)
    for facility in community.facilities:
        flags = facility_flags.setdefault(facility.id, [])
        measured = facility_measured.setdefault(facility.id, {})
        for device in facility.devices:
            series = data.get(device.id)
            if series is None:
                continue
            profile = find_profile(device.profile)
            for q in profile.quantities:
                if q.totalizer and q.name in series.columns:
                    meters[(device.id, q.name)] = _meter(series, q.name, period, device.replacements)
        if facility.kind is FacilityKind.RAINWATER_HARVESTING:
            _rainwater(ctx, facility, flags, measured)
            rain = next(
                (meters[k] for k in meters if k[1] == "rain_mm" and k[0] in {d.id for d in facility.devices}),
                None,
            )
            if rain is not None:
                rain_daily = rain.daily
        elif facility.kind is FacilityKind.RIVER_WATER:
            _river(ctx, facility, rain_daily, flags, measured)
        elif facility.kind is FacilityKind.CAR_WASH:
            _car_wash(ctx, facility, flags, measured)
        elif facility.kind is FacilityKind.MASTER_METER:
            _master(ctx, facility, flags, measured)
        for key, value in measured.items():
            figures[f"{facility.id}.{key}"] = round(value, 6)

    for device_id, series in data.items():
        skew = series.columns.get("clock_skew_s")
        skewed = skew[np.isfinite(skew)] if skew is not None else np.zeros(0)
        if len(skewed):
            site_checks.append(
                say("clock_skew", device=device_id, count=len(skewed), worst=float(np.abs(skewed).max()))
            )
    claims = [
        _verdict(claim, community, period, meters, facility_flags, facility_measured, evidence)
        for claim in community.claims
        if claim.year == year
    ]
    return VerificationResult(
        community=community.id,
        name=community.name,
        district=district.id,
        year=year,
        period=(period.start.isoformat(), period.end.isoformat()),
        meters=[m.audit for m in meters.values()],
        checks=site_checks,
        figures=figures,
        claims=claims,
        charts=_charts(community, period, meters, data),
    )


#: Per-wash litre bins of the report's histogram (L).
WASH_BINS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 200.0]


def _charts(community: Community, period: Period, meters: Meters, data: dict[str, Series]) -> Charts:
    """The series the evaluation report draws: monthly totals, daily rain and reuse, tank storage,
    daily data coverage per device, and the per-wash litres histogram."""
    months = period.months()
    monthly: dict[str, list[float]] = {}
    daily: dict[str, list[float]] = {}
    coverage: dict[str, list[int]] = {}
    for (device_id, quantity), m in meters.items():
        monthly[f"{device_id}.{quantity}"] = [
            round(float(m.daily[months == k].sum()), 4) for k in range(1, 13)
        ]
        if quantity in ("rain_mm", "supply_m3", "makeup_m3"):
            daily[f"{device_id}.{quantity}"] = [round(float(x), 4) for x in m.daily]
        if device_id not in coverage:
            share = m.sufficiency.readings_per_day / max(m.sufficiency.expected_per_day, 1e-9)
            coverage[device_id] = [int(min(100, round(100 * x))) for x in share]
    histogram: dict[str, list[float]] | None = None
    for facility, device in community.devices():
        series = data.get(device.id)
        if series is None:
            continue
        if "level_pct" in series.columns and facility.tank_capacity_m3:
            storage = _daily_storage(
                series.time_ns, series.columns["level_pct"], facility.tank_capacity_m3, period
            )
            daily[f"{device.id}.storage_m3"] = [round(float(x), 3) for x in storage]
        if "wash_l" in series.columns:
            litres = series.columns["wash_l"][np.isfinite(series.columns["wash_l"])]
            counts, _ = np.histogram(litres, bins=WASH_BINS)
            histogram = {"edges": WASH_BINS, "counts": [float(c) for c in counts]}
    return Charts(monthly=monthly, daily=daily, coverage=coverage, wash_histogram=histogram)


def _facility_meter(
    facility: Facility, meters: Meters, quantity: str, kind: DeviceKind | None = None
) -> tuple[str, _Metered] | None:
    for device in facility.devices:
        if kind is not None and find_profile(device.profile).kind is not kind:
            continue
        found = meters.get((device.id, quantity))
        if found is not None:
            return device.id, found
    return None


@dataclass
class _Context:
    """What every facility check reads, and where site-level findings go."""

    community: Community
    data: dict[str, Series]
    meters: Meters
    period: Period
    site_checks: list[Text]


def _rainwater(ctx: _Context, facility: Facility, flags: list[Text], measured: dict[str, float]) -> None:
    community, data, meters, period = ctx.community, ctx.data, ctx.meters, ctx.period
    controller = _facility_meter(facility, meters, "supply_m3", DeviceKind.RAINWATER_SYSTEM)
    if controller is None:
        return
    device, supply = controller
    makeup = meters.get((device, "makeup_m3"))
    treated = meters.get((device, "treated_m3"))
    runtime = meters.get((device, "treatment_runtime_h"))
    rain = meters.get((device, "rain_mm"))
    capacity = facility.tank_capacity_m3 or 0.0
    total_supply = float(supply.daily.sum())
    measured["reuse_m3"] = total_supply
    if makeup is not None:
        measured["makeup_m3"] = float(makeup.daily.sum())
        measured["net_saving_m3"] = total_supply - measured["makeup_m3"]
        demand = supply.daily + makeup.daily
        demand_days = demand > 0
        measured["efficiency"] = total_supply / float(demand.sum()) if demand.sum() else 0.0
        measured["reliability"] = (
            float((makeup.daily[demand_days] <= 1e-6).mean()) if demand_days.any() else 0.0
        )
    # Stuck supply meter: no supply on days the treatment unit ran.
    if runtime is not None:
        moving = runtime.daily > 0
        for start, end in checks.flat_runs(supply.daily, moving & ~np.isnan(supply.daily)):
            flags.append(supply.mark_stuck(f"{device} supply_m3", start, end, period))
    # Supply must have been treated (the reuse pump draws from the treatment unit): a supply totalizer
    # running ahead of the treated one has been inflated.
    if treated is not None:
        total_treated = float(treated.daily.sum())
        if total_supply > total_treated * 1.05 + 1.0:
            flags.append(say("supply_exceeds_treated", supply=total_supply, treated=total_treated))
        if runtime is not None and facility.rated_flow_m3h:
            capacity_m3 = TREATMENT_MARGIN * facility.rated_flow_m3h * float(runtime.daily.sum())
            measured["treatment_capacity_m3"] = capacity_m3
            if total_treated > capacity_m3 + 1.0:
                flags.append(say("treatment_capacity", treated=total_treated, capacity=capacity_m3))
    # Rainfall bound: supply over any window <= runoff + storage at start - storage at end.
    if rain is not None:
        catchments = {c.id: c for c in community.catchments}
        parts = [
            (catchments[c].area_m2, catchments[c].psi, catchments[c].first_flush_mm)
            for c in facility.catchments
        ]
        runoff = checks.runoff_m3(rain.daily, parts)
        measured["runoff_m3"] = float(runoff.sum())
        measured["rain_mm"] = float(rain.daily.sum())
        level = data[device].columns.get("level_pct")
        storage = _daily_storage(data[device].time_ns, level, capacity, period) if level is not None else None
        d_storage = (
            np.diff(np.concatenate([[storage[0]], storage])) if storage is not None else np.zeros(period.days)
        )
        slack = np.full(period.days, 0.0)
        slack[0] = capacity  # the tank may start full
        bound = (1 + RUNOFF_TOLERANCE) * runoff - d_storage + slack / max(period.days, 1)
        excess, start, length = checks.max_window_excess(supply.daily, bound + 0.1 * capacity / 365)
        measured["rainfall_bound_excess_m3"] = excess
        if excess > 0.1 * capacity:
            flags.append(say("exceeds_rainfall", start=period.date(start), days=length, excess=excess))
        measured["rainfall_bound_m3"] = float((1 + RUNOFF_TOLERANCE) * runoff.sum() + capacity)
        # Dry-spell bound: over a rainless run, supply - make-up cannot exceed what the tank held.
        worst = 0.0
        net = supply.daily - (makeup.daily if makeup is not None else 0.0)
        for start, end in checks.flat_runs(rain.daily, np.ones(period.days, dtype=bool), min_days=3):
            worst = max(worst, float(net[start:end].sum()))
        measured["dry_spell_max_net_supply_m3"] = worst
        if worst > capacity * 1.02 + 1.0:
            flags.append(say("dry_spell_bound", supply=worst, capacity=capacity))
        # Tank mass balance from level and flows: storage change = inflow - supply - overflow.
        inflow = meters.get((device, "inflow_m3"))
        overflow = meters.get((device, "overflow_m3"))
        if storage is not None and inflow is not None and overflow is not None:
            residual = d_storage[1:] - (inflow.daily - supply.daily - overflow.daily)[1:]
            measured["tank_balance_residual_m3"] = float(np.abs(residual).sum())
            through = float(inflow.daily.sum()) or 1.0
            if measured["tank_balance_residual_m3"] > 0.1 * through:
                flags.append(
                    say("tank_balance", residual=measured["tank_balance_residual_m3"], inflow=through)
                )
    ctx.site_checks.append(say("reuse_measured", facility=facility.id, reuse=measured["reuse_m3"]))


def _daily_storage(time_ns: np.ndarray, level_pct: np.ndarray, capacity: float, period: Period) -> np.ndarray:
    """Stored volume at the end of each local day (last reading of the day), carried over gaps."""
    ok = np.isfinite(level_pct)
    idx = checks.local_day(time_ns[ok] - 1) - period.first_day
    vol = level_pct[ok] / 100 * capacity
    out = np.full(period.days, np.nan)
    inside = (idx >= 0) & (idx < period.days)
    out[idx[inside]] = vol[inside]  # later readings overwrite earlier ones: the day's last
    # carry the last known level over days without readings
    last = float(np.nanmean(out)) if np.isfinite(out).any() else 0.0
    for i in range(period.days):
        if np.isnan(out[i]):
            out[i] = last
        last = out[i]
    return out


def _river(
    ctx: _Context, facility: Facility, rain_daily: np.ndarray, flags: list[Text], measured: dict[str, float]
) -> None:
    meters = ctx.meters
    pump = _facility_meter(facility, meters, "volume_m3", DeviceKind.RIVER_PUMP)
    if pump is None:
        return
    device, volume = pump
    measured["river_water_m3"] = float(volume.daily.sum())
    runtime = meters.get((device, "runtime_h"))
    if runtime is not None and facility.rated_flow_m3h:
        expected = facility.rated_flow_m3h * float(runtime.daily.sum())
        measured["expected_from_runtime_m3"] = expected
        if expected and abs(measured["river_water_m3"] - expected) / expected > 0.15:
            flags.append(say("pump_volume_vs_runtime", volume=measured["river_water_m3"], expected=expected))
    energy = meters.get((device, "energy_kwh"))
    if energy is not None and measured["river_water_m3"] > 0:
        # kWh per m3 = g H / (3.6e6 eta) x 1000: heads of 10-60 m at 30-80 % efficiency give 0.03-0.55
        ratio = float(energy.daily.sum()) / measured["river_water_m3"]
        measured["pump_kwh_per_m3"] = ratio
        low, high = PUMP_KWH_PER_M3
        if not low <= ratio <= high:
            flags.append(say("pump_energy", kwh_per_m3=ratio, low=low, high=high))
    rainy = np.flatnonzero((rain_daily > RAINY_DAY_MM) & (volume.daily > 0))
    measured["irrigation_on_rainy_days"] = float(len(rainy))
    if len(rainy):
        flags.append(say("rainy_day_irrigation", days=len(rainy)))


def _car_wash(ctx: _Context, facility: Facility, flags: list[Text], measured: dict[str, float]) -> None:
    community, data, meters, period = ctx.community, ctx.data, ctx.meters, ctx.period
    unit = next((d for d in facility.devices if find_profile(d.profile).kind is DeviceKind.CAR_WASH), None)
    if unit is None or unit.id not in data:
        return
    series = data[unit.id]
    wash_l = series.columns.get("wash_l")
    per_wash = wash_l[np.isfinite(wash_l)] if wash_l is not None else np.zeros(0)
    measured["washes"] = float(len(per_wash))
    if len(per_wash):
        measured["l_per_wash"] = float(per_wash.mean())
    fresh = meters.get((unit.id, "fresh_m3"))
    count = meters.get((unit.id, "wash_count"))
    if fresh is not None and count is not None and count.daily.sum() > 0:
        measured["l_per_wash_totalizer"] = float(fresh.daily.sum() * 1000 / count.daily.sum())
        if (
            len(per_wash)
            and abs(measured["l_per_wash_totalizer"] - measured["l_per_wash"])
            > 0.1 * measured["l_per_wash"] + 0.05
        ):
            flags.append(
                say(
                    "wash_totalizer_disagrees",
                    per_wash=measured["l_per_wash"],
                    totalizer=measured["l_per_wash_totalizer"],
                )
            )
    if community.parking_spaces and len(per_wash) > community.parking_spaces * period.days:
        flags.append(say("implausible_wash_count", washes=len(per_wash)))


def _master(ctx: _Context, facility: Facility, flags: list[Text], measured: dict[str, float]) -> None:
    community, meters, period = ctx.community, ctx.meters, ctx.period
    found = _facility_meter(facility, meters, "volume_m3")
    if found is None:
        return
    device, master = found
    # A community with residents never uses no water for a day: zero-use runs are a stuck meter.
    stuck = checks.flat_runs(master.daily, np.ones(period.days, dtype=bool), min_days=2)
    for start, end in stuck:
        flags.append(master.mark_stuck(f"{device} volume_m3", start, end, period))
    valid = np.ones(period.days, dtype=bool)
    for s, e in stuck:
        valid[s:e] = False
    days = max(int(valid.sum()), 1)
    lpcd = float(master.daily[valid].sum()) * 1000 / community.population / days
    measured["master_m3"] = float(master.daily.sum())
    measured["per_capita_lpd"] = lpcd
    if not PER_CAPITA_RANGE[0] <= lpcd <= PER_CAPITA_RANGE[1]:
        ctx.site_checks.append(say("per_capita_out_of_range", lpcd=lpcd))
    sub = sum(
        float(m.daily.sum())
        for (dev, q), m in meters.items()
        if q in ("makeup_m3",) or (q == "volume_m3" and dev != device and _is_potable_sub(community, dev))
    )
    measured["sub_meters_m3"] = sub
    if sub > measured["master_m3"] * 1.02:
        ctx.site_checks.append(say("sub_meters_exceed_master"))


def _is_potable_sub(community: Community, device_id: str) -> bool:
    for facility, device in community.devices():
        if device.id == device_id:
            return facility.kind is FacilityKind.CAR_WASH
    return False


#: What each measure is measured by: (totalizer, figure key, whether more is the better direction).
MEASURED_BY: dict[Measure, tuple[str, str, bool]] = {
    Measure.RAINWATER_REUSE_PER_DAY: ("supply_m3", "reuse_m3", True),
    Measure.RAINWATER_REUSE_PER_YEAR: ("supply_m3", "reuse_m3", True),
    Measure.RIVER_WATER_PER_YEAR: ("volume_m3", "river_water_m3", True),
    Measure.CAR_WASH_WATER_PER_CAR: ("fresh_m3", "l_per_wash", False),
    Measure.PER_CAPITA_USE: ("volume_m3", "per_capita_lpd", False),
}


def _verdict(
    claim: Claim,
    community: Community,
    period: Period,
    meters: Meters,
    flags: dict[str, list[Text]],
    measured_by_facility: dict[str, dict[str, float]],
    evidence: Mapping[str, Collection[dt.date]] | None = None,
) -> ClaimResult:
    """A claim's verdict: insufficient data, not verified (an integrity finding, or under half the
    claim), partly verified, or verified (the measurement reaches the claim within its uncertainty)."""
    facility = next(f for f in community.facilities if f.id == claim.facility)
    measured = measured_by_facility.get(facility.id, {})
    reasons = list(flags.get(facility.id, []))
    statuses = _meter_statuses(facility, period, reasons)
    quantity, key, more_is_better = MEASURED_BY[claim.measure]
    devices = {d.id: d for d in facility.devices}
    changed = sorted(f"{dev} {day.isoformat()}" for dev in devices for day in (evidence or {}).get(dev, ()))
    if changed:
        shown = ", ".join(changed[:5]) + (f" (+{len(changed) - 5})" if len(changed) > 5 else "")
        reasons.append(say("evidence_changed", count=len(changed), days=shown))
    found = next(((dev, m) for (dev, q), m in meters.items() if q == quantity and dev in devices), None)

    def result(verdict: Verdict, figures: dict[str, object] | None = None) -> ClaimResult:
        fields: dict[str, object] = {
            "id": claim.id, "measure": str(claim.measure), "facility": facility.id, "claimed": claim.value,
            "unit": claim.unit, "measured": None, "interval": None, "uncertainty": None, "annualized": None,
            "fraction": None, "verdict": verdict, "reasons": reasons, "meters": statuses, **(figures or {}),
        }  # fmt: skip
        return ClaimResult.model_validate(fields)

    if found is None or key not in measured:
        reasons.append(say("no_meter_data"))
        return result("insufficient_data")
    device_id, metered = found
    audit = metered.audit
    checked = evidence is not None and device_id in evidence
    unit = find_profile(devices[device_id].profile).quantity[quantity].unit
    basis = ClaimBasis(
        device=device_id, quantity=quantity, unit=unit,
        measured=round(audit.total - audit.estimated, 6), estimated=round(audit.estimated, 6), verified=None,
        evidence="changed" if changed else "intact" if checked else "not_checked", changed_days=changed,
    )  # fmt: skip
    reasons.extend(audit.findings)
    if not audit.sufficient:
        return result("insufficient_data", {"basis": basis})
    is_wash = claim.measure is Measure.CAR_WASH_WATER_PER_CAR
    if is_wash and claim.value < PER_WASH_EVIDENCE_BELOW_L and measured.get("washes", 0) == 0:
        reasons.append(say("needs_per_wash_evidence"))
        return result("insufficient_data", {"basis": basis})
    per_day = claim.measure is Measure.RAINWATER_REUSE_PER_DAY
    value = measured[key] / period.days if per_day else measured[key]
    u = _accuracy(device_id, unit, statuses) + (1 - metered.audit.valid_day_share)
    fraction = value / claim.value if more_is_better else (claim.value / value if value else 0.0)
    bound = measured.get("rainfall_bound_m3")
    if bound is not None and claim.measure in (
        Measure.RAINWATER_REUSE_PER_DAY,
        Measure.RAINWATER_REUSE_PER_YEAR,
    ):
        claimed_year = claim.value * period.days if per_day else claim.value
        if claimed_year > bound:
            reasons.append(say("claim_exceeds_rainfall", claimed=claimed_year, bound=bound))
    if any(r.code in INTEGRITY_CODES for r in reasons):
        verdict: Verdict = "not_verified"
    elif fraction >= 1 - u:
        # a meter past its service life or verification interval measured it: at most partly verified
        verdict = "partly_verified" if any(r.code in METER_DUE_CODES for r in reasons) else "verified"
    elif fraction >= 0.5:
        verdict = "partly_verified"
        reasons.append(say("partly", fraction=fraction))
    else:
        verdict = "not_verified"
        reasons.append(say("below_half", fraction=fraction))
    if verdict in ("verified", "partly_verified"):
        basis = basis.model_copy(update={"verified": round(audit.total, 6)})
    figures: dict[str, object] = {
        "basis": basis,
        "measured": round(value, 6),
        "interval": (round(value * (1 - u), 6), round(value * (1 + u), 6)),
        "uncertainty": round(u, 4),
        "annualized": round(value * period.days if per_day else value, 6),
        "fraction": round(fraction, 4),
    }
    return result(verdict, figures)


def _water_meter(device: Device) -> bool:
    """Whether the device meters water (a totalizer in m3): the devices the registry check covers."""
    return any(q.totalizer and q.unit == "m3" for q in find_profile(device.profile).quantities)


def _meter_statuses(facility: Facility, period: Period, reasons: list[Text]) -> list[MeterStatus]:
    """The registered meters of the facility's water-metering devices that served in the year, each
    judged against its service life or verification interval (JJG 162, evidence.meters) on 31 December
    of the year or on the day it was removed if earlier; an overdue one, or a device with no registered
    meter for the year, is added to `reasons`."""
    last_day = period.end - dt.timedelta(days=1)
    statuses: list[MeterStatus] = []
    for device in facility.devices:
        if not _water_meter(device):
            continue
        serving = meters_in_service(device, period.start, last_day)
        if not serving:
            reasons.append(say("meter_unregistered", device=device.id))
        for meter, on in serving:
            due = meter_due(meter.nominal_dn, meter.installed_on, meter.calibrated_on)
            overdue = due.overdue(on)
            statuses.append(
                MeterStatus(
                    device=device.id,
                    serial=meter.serial,
                    nominal_dn=meter.nominal_dn,
                    accuracy_class=meter.accuracy_class,
                    installed_on=meter.installed_on.isoformat(),
                    calibrated_on=meter.calibrated_on.isoformat() if meter.calibrated_on else None,
                    removed_at=_iso(instant_ns(meter.removed_at)) if meter.removed_at else None,
                    rule=due.rule,
                    due=due.due.isoformat(),
                    judged_on=on.isoformat(),
                    overdue=overdue,
                )
            )
            if not overdue:
                continue
            common = {"device": device.id, "serial": meter.serial, "dn": meter.nominal_dn, "years": due.years,
                      "due": due.due.isoformat(), "on": on.isoformat()}  # fmt: skip
            if due.rule == "service_life":
                reasons.append(
                    say("meter_past_service_life", installed=meter.installed_on.isoformat(), **common)
                )
            else:
                reasons.append(say("meter_calibration_overdue", since=due.since.isoformat(), **common))
    return statuses


def _accuracy(device_id: str, unit: str, statuses: list[MeterStatus]) -> float:
    """The relative accuracy of the claim's meter: for water, the registered accuracy class of the
    meters that measured the year (the worst of them), else the unit's assumed class (ACCURACY)."""
    classes = [ACCURACY_BY_CLASS[s.accuracy_class] for s in statuses if s.device == device_id]
    if unit == "m3" and classes:
        return max(classes)
    return ACCURACY.get(unit, 0.02)


def verify(
    store: InfluxStore,
    site: Site,
    community_id: str,
    year: int,
    evidence: Mapping[str, Collection[dt.date]] | None = None,
) -> VerificationResult:
    """Read and evaluate one community-year (`evidence`: see `evaluate`)."""
    return evaluate(site, community_id, year, read_community(store, site, community_id, year), evidence)
