"""What a property manager sees now: tank state, days of supply, reuse totals, device health and the
alert conditions. Pure functions over plain values and numpy arrays; `api/readings.py` fetches them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from verification.checks import DAY_NS, SHANGHAI_OFFSET_NS, consumption

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
NS = 1_000_000_000

TankState = Literal["overflowing", "about_to_overflow", "normal", "low", "about_to_run_dry", "unknown"]


@dataclass(frozen=True)
class Thresholds:
    """When a tank or a device deserves an alert (API settings; defaults fit a 50-100 m3 tank)."""

    overflow_pct: float = 95.0  # at or above: about to overflow, whatever the trend
    overflow_horizon_min: float = 120.0  # rising fast enough to be full within this: about to overflow
    low_pct: float = 15.0  # at or below: low level
    dry_days: float = 1.0  # fewer days of supply than this at last week's demand: about to run dry
    silent_intervals: float = 5.0  # a device silent for more than this many reporting intervals


def bucket_increments(
    bucket_ns: I64, first: F64, last: F64, rollover: float | None, width_ns: int
) -> tuple[I64, F64]:
    """Consumption per time bucket of a totalizer, from the first and last reading of each bucket.

    The readings are interleaved in time order (first_0, last_0, first_1, ...), so the growth inside a
    bucket and the growth between adjacent buckets are both counted; the latter goes to the later
    bucket. Growth across a silence of more than one bucket (`width_ns`) is not attributed to any
    bucket: the meter says water flowed, not when. The same rollover and reset rules as verification
    apply (`verification.checks.consumption`).
    """
    n = len(bucket_ns)
    if n == 0:
        return bucket_ns, np.zeros(0)
    # Interleave with distinct times: first at 2 x bucket start, last one ns later (order is what matters).
    t = np.empty(2 * n, dtype=np.int64)
    t[0::2], t[1::2] = bucket_ns * 2, bucket_ns * 2 + 1
    v = np.empty(2 * n)
    v[0::2], v[1::2] = first, last
    ok = np.isfinite(v)
    t = t[ok]
    used = consumption(t, v[ok], rollover)
    start_bucket, end_bucket = t[:-1] // 2, used.time_ns // 2
    delta = np.where(end_bucket - start_bucket <= width_ns, used.delta, 0.0)
    idx = np.searchsorted(bucket_ns, end_bucket)
    return bucket_ns, np.bincount(idx, weights=delta, minlength=n)[:n].astype(np.float64)


def local_date(time_ns: int) -> dt.date:
    """The Asia/Shanghai calendar date of a UTC instant."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=(time_ns + SHANGHAI_OFFSET_NS) // DAY_NS)


def local_midnight_ns(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days * DAY_NS - SHANGHAI_OFFSET_NS


@dataclass(frozen=True)
class PeriodTotals:
    today: float
    month: float
    year: float


def period_totals(day_ns: I64, daily: F64, now_ns: int) -> PeriodTotals:
    """Today, this month and this year (Asia/Shanghai) from per-local-day totals keyed by local midnight."""
    today = local_date(now_ns)
    starts = {
        "today": local_midnight_ns(today),
        "month": local_midnight_ns(today.replace(day=1)),
        "year": local_midnight_ns(today.replace(month=1, day=1)),
    }
    sums = {k: float(daily[(day_ns >= a) & (day_ns <= now_ns)].sum()) for k, a in starts.items()}
    return PeriodTotals(round(sums["today"], 6), round(sums["month"], 6), round(sums["year"], 6))


def minutes_to_full(time_ns: I64, level_pct: F64) -> float | None:
    """At the recent trend (least squares over the window given), minutes until 100 %; None unless rising."""
    ok = np.isfinite(level_pct)
    t, v = time_ns[ok], level_pct[ok]
    if len(t) < 3 or t[-1] == t[0]:
        return None
    minutes = (t - t[0]) / (60 * NS)
    slope = float(np.polyfit(minutes, v, 1)[0])  # % per minute
    if slope <= 1e-6:
        return None
    return max(0.0, (100.0 - float(v[-1])) / slope)


def days_of_supply(stored_m3: float, demand_m3: float, days: float) -> float | None:
    """Days the stored water lasts at the demand seen over `days`; None when there was no demand."""
    if days <= 0 or demand_m3 <= 0:
        return None
    return stored_m3 / (demand_m3 / days)


def tank_state(
    level_pct: float | None,
    to_full_min: float | None,
    supply_days: float | None,
    overflowed_recently_m3: float,
    limits: Thresholds,
) -> TankState:
    """One word for the tank, most urgent first."""
    if level_pct is None or not np.isfinite(level_pct):
        return "unknown"
    if overflowed_recently_m3 > 0:
        return "overflowing"
    if level_pct >= limits.overflow_pct or (
        to_full_min is not None and to_full_min <= limits.overflow_horizon_min
    ):
        return "about_to_overflow"
    if supply_days is not None and supply_days < limits.dry_days:
        return "about_to_run_dry"
    if level_pct <= limits.low_pct:
        return "low"
    return "normal"


@dataclass(frozen=True)
class Health:
    last_seen_ns: int | None
    age_s: float | None
    silent: bool


def device_health(last_ns: int | None, now_ns: int, interval_s: float, limits: Thresholds) -> Health:
    """A device is silent when its last reading is older than `silent_intervals` reporting intervals."""
    if last_ns is None:
        return Health(None, None, True)
    age = max(0.0, (now_ns - last_ns) / NS)
    return Health(last_ns, round(age, 3), age > limits.silent_intervals * interval_s)


@dataclass(frozen=True)
class Condition:
    """An alert condition seen now. `fingerprint` is stable while the condition lasts."""

    fingerprint: str
    kind: str  # overflow, run_dry, low_level, pump_fault, device_silent, meter_reset, dead_letter
    severity: Literal["warning", "critical"]
    device: str | None
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TankView:
    device: str
    state: TankState
    level_pct: float | None
    days_of_supply: float | None
    minutes_to_full: float | None


@dataclass(frozen=True)
class DeviceView:
    device: str
    kind: str
    health: Health
    fault_code: int | None
    interval_s: float


@dataclass(frozen=True)
class EventView:
    device: str
    quantity: str
    time_ns: int
    previous: float
    current: float


@dataclass(frozen=True)
class DeadLetterView:
    device: str | None
    reason: str
    count: int
    last_ns: int
    message: str


def conditions(
    community: str,
    tanks: list[TankView],
    devices: list[DeviceView],
    resets: list[EventView],
    dead_letters: list[DeadLetterView],
) -> list[Condition]:
    """Every alert condition of the community now, most urgent kinds first."""
    out: list[Condition] = []
    base = f"{community}/"
    for tank in tanks:
        p: dict[str, object] = {
            "level_pct": tank.level_pct,
            "days_of_supply": tank.days_of_supply,
            "minutes_to_full": tank.minutes_to_full,
        }
        if tank.state in ("overflowing", "about_to_overflow"):
            severity: Literal["warning", "critical"] = (
                "critical" if tank.state == "overflowing" else "warning"
            )
            out.append(
                Condition(
                    f"{base}{tank.device}/overflow",
                    "overflow",
                    severity,
                    tank.device,
                    {**p, "state": tank.state},
                )
            )
        elif tank.state == "about_to_run_dry":
            out.append(Condition(f"{base}{tank.device}/run_dry", "run_dry", "warning", tank.device, p))
        elif tank.state == "low":
            out.append(Condition(f"{base}{tank.device}/low_level", "low_level", "warning", tank.device, p))
    for d in devices:
        if d.fault_code:
            out.append(
                Condition(
                    f"{base}{d.device}/pump_fault/{d.fault_code}",
                    "pump_fault",
                    "critical",
                    d.device,
                    {"fault_code": d.fault_code},
                )
            )
        if d.health.silent:
            out.append(
                Condition(
                    f"{base}{d.device}/device_silent",
                    "device_silent",
                    "warning",
                    d.device,
                    {"age_s": d.health.age_s, "interval_s": d.interval_s},
                )
            )
    for e in resets:
        out.append(
            Condition(
                f"{base}{e.device}/meter_reset/{e.quantity}/{e.time_ns}",
                "meter_reset",
                "warning",
                e.device,
                {"quantity": e.quantity, "previous": e.previous, "current": e.current, "at": _iso(e.time_ns)},
            )
        )
    for dl in dead_letters:
        out.append(
            Condition(
                f"{base}{dl.device or '-'}/dead_letter/{dl.reason}",
                "dead_letter",
                "warning",
                dl.device,
                {"reason": dl.reason, "count": dl.count, "last": _iso(dl.last_ns), "message": dl.message},
            )
        )
    return out


def _iso(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / NS, dt.UTC).isoformat().replace("+00:00", "Z")
