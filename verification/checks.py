"""Verification checks: pure numpy functions over metered series, no I/O.

Each function states its formula and reference (DOMAIN.md; docs/verification.md lists them all).
Times are UTC nanoseconds (int64); calendar days are Asia/Shanghai days (UTC+8, no daylight saving),
so a day index is `(t + 8 h) // 1 d`. A reading at t shows the totals through t, so the water of the
interval ending at t belongs to the day of `t - 1 ns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.registers import ROLLOVER_BAND
from evidence.meters import Swap, SwapProblem, interval_use, swap_problems

NS = 10**9
DAY_NS = 86400 * NS
SHANGHAI_OFFSET_NS = 8 * 3600 * NS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def local_day(time_ns: I64) -> I64:
    """Asia/Shanghai day number (days since 1970-01-01 local) of each instant."""
    return (time_ns + SHANGHAI_OFFSET_NS) // DAY_NS


@dataclass(frozen=True)
class SwapInterval:
    """The interval between readings that holds recorded meter swaps, with what the record gave."""

    index: int  # of the interval in Consumption.delta
    last_ns: int  # the last reading of the old meter
    last: float
    first_ns: int  # the first reading of the new meter
    first: float
    swaps: tuple[Swap, ...]
    use: float  # (F_old - L) + (R - F_new), chained for several swaps (evidence.meters.interval_use)
    problems: tuple[tuple[SwapProblem, Swap], ...]  # where the record contradicts the readings


@dataclass(frozen=True)
class Consumption:
    """Water (or mm, kWh, h) per interval between readings, with what had to be edited."""

    time_ns: I64  # end of each interval
    delta: F64
    # indices of intervals where the meter restarted with no replacement recorded (unexplained resets)
    resets: list[int] = field(default_factory=list)
    rollovers: list[int] = field(default_factory=list)
    duplicates: int = 0  # readings sharing a timestamp with an earlier one (counted once)
    swapped: list[SwapInterval] = field(default_factory=list)  # intervals holding a recorded swap


def consumption(
    time_ns: I64, cumulative: F64, rollover: float | None = None, swaps: Sequence[Swap] = ()
) -> Consumption:
    """Deltas of a cumulative totalizer: an interval holding a recorded meter swap (`swaps`, readings
    stamped at or after its time are the new meter's) uses (F_old - L) + (R - F_new); otherwise growth
    as is; a wrap adds `rollover`; any other drop is an unexplained reset (a replaced meter starting
    from 0: the new reading is the interval's use) — the same rules as the collector's, vectorised
    (DOMAIN.md, VEE: rollover delta = new + (max - old); evidence.meters)."""
    if len(cumulative) < 2:
        return Consumption(time_ns[1:], np.zeros(0))
    steps = np.diff(time_ns)
    if bool((steps > 0).all()):  # the usual case, as InfluxDB returns them: no sort, no copy
        t, v = time_ns, cumulative
        keep = np.ones(len(t), dtype=bool)
    else:
        order = np.argsort(time_ns, kind="stable")
        t, v = time_ns[order], cumulative[order]
        keep = np.concatenate([[True], np.diff(t) > 0])  # duplicates: the first reading of a timestamp
        t, v = t[keep], v[keep]
    d = np.diff(v)
    swapped: list[SwapInterval] = []
    if swaps:
        # the interval (t[i], t[i + 1]] holding each swap: t[i] < time <= t[i + 1]
        ends = np.searchsorted(t, np.array([s.time_ns for s in swaps], dtype=np.int64), side="left")
        held: dict[int, list[Swap]] = {}
        for swap, end in zip(swaps, ends.tolist(), strict=True):
            if 1 <= end < len(t):
                held.setdefault(end - 1, []).append(swap)
        for k, group in sorted(held.items()):
            group.sort()
            last, first = float(v[k]), float(v[k + 1])
            d[k] = interval_use(last, first, group)
            problems = tuple(swap_problems(last, first, group))
            swapped.append(
                SwapInterval(k, int(t[k]), last, int(t[k + 1]), first, tuple(group), float(d[k]), problems)
            )
    drops = np.flatnonzero(d < 0)
    rollovers: list[int] = []
    resets: list[int] = []
    for i in drops:
        prev, new = v[i], v[i + 1]
        if rollover and prev >= rollover * (1 - ROLLOVER_BAND) and new <= rollover * ROLLOVER_BAND:
            d[i] = new + rollover - prev
            rollovers.append(int(i))
        else:
            d[i] = new
            resets.append(int(i))
    return Consumption(t[1:], d, resets, rollovers, int((~keep).sum()), swapped)


def daily_sum(time_ns: I64, values: F64, first_day: int, days: int) -> F64:
    """Sum of interval values per local day (an interval ending at t counts in the day of t - 1 ns)."""
    idx = local_day(time_ns - 1) - first_day
    ok = (idx >= 0) & (idx < days)
    return np.bincount(idx[ok], weights=values[ok], minlength=days)[:days].astype(np.float64)


@dataclass(frozen=True)
class Sufficiency:
    """CalTRACK-style data sufficiency of one meter over a period."""

    readings_per_day: F64
    expected_per_day: float
    valid_days: npt.NDArray[np.bool_]
    valid_share: float
    month_shares: dict[int, float]  # month (1-12) -> share of its days that are valid
    gaps: list[tuple[int, int]]  # (start_ns, end_ns) of silences longer than two intervals
    sufficient: bool


#: CalTRACK / eemeter (DOMAIN.md): a day is valid with >= 50 % of its readings; the period needs
#: >= 90 % valid days overall and in every calendar month.
DAY_VALID_SHARE = 0.5
PERIOD_VALID_SHARE = 0.9


def sufficiency(time_ns: I64, interval_s: float, first_day: int, days: int, months: I64) -> Sufficiency:
    """Readings per local day against `86400 / interval_s`; `months[i]` is the month of day i."""
    counts = np.bincount(np.clip(local_day(time_ns - 1) - first_day, 0, days), minlength=days + 1)[:days]
    expected = 86400 / interval_s
    valid = counts >= DAY_VALID_SHARE * expected
    month_shares = {int(m): float(valid[months == m].mean()) for m in np.unique(months)}
    spacing = np.diff(time_ns)
    t = time_ns
    if bool((spacing < 0).any()):  # sorting what is already in order costs a fifth of an evaluation
        t = np.sort(time_ns)
        spacing = np.diff(t)
    long = np.flatnonzero(spacing > 2 * interval_s * NS)
    gaps = [(int(t[i]), int(t[i + 1])) for i in long]
    share = float(valid.mean()) if days else 0.0
    ok = share >= PERIOD_VALID_SHARE and all(s >= PERIOD_VALID_SHARE for s in month_shares.values())
    return Sufficiency(counts.astype(np.float64), expected, valid, share, month_shares, gaps, ok)


def iqr_spikes(daily: F64) -> npt.NDArray[np.int64]:
    """Days whose use exceeds median + 3 x IQR of the days (CalTRACK outlier rule, DOMAIN.md)."""
    if len(daily) < 7:
        return np.zeros(0, dtype=np.int64)
    q1, med, q3 = np.percentile(daily, [25, 50, 75])
    limit = med + 3 * (q3 - q1)
    return np.flatnonzero(daily > max(limit, med * 1.5 + 1e-9)).astype(np.int64)


def flat_runs(daily: F64, moving: npt.NDArray[np.bool_], min_days: int = 3) -> list[tuple[int, int]]:
    """Runs of at least `min_days` days with zero use while a related meter moved (a stuck meter)."""
    stuck = (daily <= 0) & moving
    runs: list[tuple[int, int]] = []
    start = None
    for i, s in enumerate([*stuck.tolist(), False]):
        if s and start is None:
            start = i
        elif not s and start is not None:
            if i - start >= min_days:
                runs.append((start, i))
            start = None
    return runs


def runoff_m3(rain_mm_daily: F64, catchments: list[tuple[float, float, float]]) -> F64:
    """Daily runoff reaching a tank: sum over catchments of A x psi x max(P - delta, 0) / 1000
    (DOMAIN.md "Runoff"), with (area_m2, psi, first_flush_mm) per catchment. An event is a run of
    consecutive wet days: its first `delta` mm are diverted once, as a first-flush diverter does."""
    out = np.zeros_like(rain_mm_daily)
    for area, psi, delta in catchments:
        remaining_flush = delta
        for i, p in enumerate(rain_mm_daily.tolist()):
            if p <= 0:
                remaining_flush = delta  # a dry day ends the event
                continue
            diverted = min(p, remaining_flush)
            remaining_flush -= diverted
            out[i] += area * psi * (p - diverted) / 1000.0
    return out


def max_window_excess(
    supply: F64, bound: F64, windows: tuple[int, ...] = (1, 7, 30, 365)
) -> tuple[float, int, int]:
    """The largest excess of supply over its bound summed over any window of the given lengths:
    (excess, start day, length). Positive means the meter claims more than physics allows."""
    best = (-np.inf, 0, 0)
    diff = supply - bound
    csum = np.concatenate([[0.0], np.cumsum(diff)])
    for w in windows:
        if w > len(diff):
            continue
        sums = csum[w:] - csum[:-w]
        i = int(np.argmax(sums))
        if sums[i] > best[0]:
            best = (float(sums[i]), i, w)
    return best
