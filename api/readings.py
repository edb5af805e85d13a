"""The InfluxQL the API runs: latest readings, per-bucket totalizer growth, recent series, meter events
and dead letters of one community. Aggregation happens in InfluxDB; what comes back is small.

Every query binds tag values and times as parameters (`$c`, `$a`...) and names only identifiers that
come from the profiles, so nothing a caller sends is pasted into InfluxQL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.live import F64, I64, NS, DeadLetterView, EventView, bucket_increments
from devices.profile import Profile
from devices.registers import rollover_values
from store.influx import InfluxStore, quote_ident
from verification.checks import SHANGHAI_OFFSET_NS


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Latest:
    time_ns: int
    values: dict[str, Any]  # quantity -> value as stored (None for a field absent in that point)


def latest(
    store: InfluxStore,
    profile: Profile,
    community: str,
    device: str,
    windows_ns: tuple[int, ...],
    now_ns: int,
) -> Latest | None:
    """The device's newest point at or before `now_ns`, looked for in each window (ns back from now) in
    turn: a short one first, which finds a healthy device's reading fast (InfluxDB reads less), and a
    longer one only for a device that has been quiet."""
    names = [q.name for q in profile.quantities]
    select = ", ".join(quote_ident(n) for n in names)
    for window_ns in windows_ns:
        found = store.query(
            f"SELECT {select} FROM {quote_ident(str(profile.kind))} "  # noqa: S608 (InfluxQL, quoted identifiers)
            "WHERE community = $c AND device = $d AND time > $a AND time <= $b ORDER BY time DESC LIMIT 1",
            params={"c": community, "d": device, "a": now_ns - window_ns, "b": now_ns},
        )
        if found and len(found[0]):
            s = found[0]
            return Latest(
                int(s.time.astype(np.int64)[0]),
                {n: _scalar(s.columns[n][0]) for n in names if n in s.columns},
            )
    return None


#: Bucket widths `increments` is called with.
BUCKET_NS = {"1h": 3600 * NS, "1d": 86400 * NS}

#: Days older than this are settled: the collector dead-letters readings more than 7 days late
#: (collector.pipeline.Limits.max_past_s), so their FIRST/LAST cannot change any more.
SETTLED_NS = 8 * 86400 * NS


def _first_last(
    store: InfluxStore, profile: Profile, community: str, device: str, quantity: str,
    start_ns: int, end_ns: int, bucket: str,
) -> tuple[I64, F64, F64]:  # fmt: skip
    q = quote_ident(quantity)
    found = store.query(
        f"SELECT FIRST({q}) AS f, LAST({q}) AS l FROM {quote_ident(str(profile.kind))} "  # noqa: S608
        f"WHERE community = $c AND device = $d AND time >= $a AND time < $b "
        f"GROUP BY time({bucket}) fill(none) tz('Asia/Shanghai')",
        params={"c": community, "d": device, "a": start_ns, "b": end_ns},
    )
    if not found or len(found[0]) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    s = found[0]
    return s.time.astype(np.int64), s.values("f"), s.values("l")


class SettledBuckets:
    """FIRST/LAST per bucket of settled periods, kept in memory so that a status request late in the
    year asks InfluxDB only for the last days, not for every reading since Jan 1 (measured: 718 ms a
    request on Dec 30 at 1-minute readings, against 134 ms in mid-January; docs/benchmarks.md).

    Keyed by series, bucket and start; extended as time passes. History written behind the collector
    (a backfill of old days) is seen after a restart of the API.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], tuple[int, I64, F64, F64]] = {}
        self._lock = threading.Lock()

    def increments(
        self, store: InfluxStore, profile: Profile, community: str, device: str, quantity: str,
        start_ns: int, end_ns: int, bucket: str,
    ) -> tuple[I64, F64]:  # fmt: skip
        """Growth of a totalizer per bucket (`1h`, `1d`: local days) in [start, end], from FIRST/LAST
        per bucket pushed down to InfluxDB and put together by `api.live.bucket_increments`."""
        width = BUCKET_NS[bucket]
        # settled up to a bucket boundary (Asia/Shanghai: local midnight for days), SETTLED_NS before the
        # end at least; a bucket split between the cached and the fresh query would be counted twice
        settled = (end_ns - SETTLED_NS + SHANGHAI_OFFSET_NS) // width * width - SHANGHAI_OFFSET_NS
        key = (community, device, quantity, bucket, str(start_ns))
        with self._lock:
            upto, t, f, last = self._cache.get(
                key, (start_ns, np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
            )
        if settled > upto:
            t2, f2, l2 = _first_last(store, profile, community, device, quantity, upto, settled, bucket)
            t, f, last = np.concatenate([t, t2]), np.concatenate([f, f2]), np.concatenate([last, l2])
            with self._lock:
                self._cache[key] = (settled, t, f, last)
            upto = settled
        t3, f3, l3 = _first_last(store, profile, community, device, quantity, upto, end_ns + 1, bucket)
        return bucket_increments(
            np.concatenate([t, t3]), np.concatenate([f, f3]), np.concatenate([last, l3]),
            rollover_values(profile).get(quantity), width,
        )  # fmt: skip


def recent(
    store: InfluxStore,
    profile: Profile,
    community: str,
    device: str,
    quantity: str,
    start_ns: int,
    end_ns: int,
) -> tuple[I64, F64]:
    """Raw readings of one numeric quantity (a short window: the tank level of the last hour)."""
    found = store.query(
        f"SELECT {quote_ident(quantity)} AS v FROM {quote_ident(str(profile.kind))} "  # noqa: S608
        "WHERE community = $c AND device = $d AND time > $a AND time <= $b",
        params={"c": community, "d": device, "a": start_ns, "b": end_ns},
    )
    if not found or len(found[0]) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return found[0].time.astype(np.int64), found[0].values("v")


def meter_resets(store: InfluxStore, community: str, start_ns: int, end_ns: int) -> list[EventView]:
    """Totalizer resets the collector recorded (`meter_event`, event=reset) in the window."""
    found = store.query(
        "SELECT previous, current FROM meter_event WHERE community = $c AND event = 'reset' "
        "AND time > $a AND time <= $b GROUP BY device, quantity",
        params={"c": community, "a": start_ns, "b": end_ns},
    )
    out: list[EventView] = []
    for s in found:
        times = s.time.astype(np.int64)
        for i in range(len(s)):
            out.append(
                EventView(
                    s.tags.get("device", ""),
                    s.tags.get("quantity", ""),
                    int(times[i]),
                    float(s.values("previous")[i]),
                    float(s.values("current")[i]),
                )
            )
    return sorted(out, key=lambda e: (e.time_ns, e.device, e.quantity))


def dead_letters(store: InfluxStore, community: str, start_ns: int, end_ns: int) -> list[DeadLetterView]:
    """Refused inputs of the community's devices in the window, per device and reason."""
    found = store.query(
        "SELECT COUNT(message) AS n, LAST(message) AS m FROM dead_letter "
        "WHERE community = $c AND time > $a AND time <= $b GROUP BY device, reason",
        params={"c": community, "a": start_ns, "b": end_ns},
    )
    last_times = store.query(
        "SELECT LAST(message) AS m FROM dead_letter "
        "WHERE community = $c AND time > $a AND time <= $b GROUP BY device, reason",
        params={"c": community, "a": start_ns, "b": end_ns},
    )  # with one selector, InfluxDB returns the point's own time (with two, the window start)
    when = {
        (s.tags.get("device"), s.tags.get("reason")): int(s.time.astype(np.int64)[0])
        for s in last_times
        if len(s)
    }
    out = []
    for s in found:
        if not len(s):
            continue
        key = (s.tags.get("device"), s.tags.get("reason"))
        out.append(
            DeadLetterView(
                key[0] or None,
                key[1] or "",
                int(s.values("n")[0]),
                when.get(key, start_ns),
                str(s.columns["m"][0]),
            )
        )
    return out


#: Washes that name no vehicle class (the unit's `vehicle_class` is optional) are kept under this key.
UNCLASSIFIED = ""


def washes_per_day(
    store: InfluxStore,
    profile: Profile,
    community: str,
    device: str,
    classes: tuple[str, ...],
    start_ns: int,
    end_ns: int,
) -> dict[str, tuple[I64, F64, F64]]:
    """A car-wash unit's washes per local day (Asia/Shanghai) in [start, end], per vehicle class:
    (day starts, washes, fresh litres). A wash is a point with `wash_l` (the unit's per-wash message;
    its status messages carry none); InfluxDB counts and sums them per day and class (`vehicle_class`
    is a field, so one query per class), and the washes that name no class are the day's total less
    the classified ones (under `UNCLASSIFIED`)."""

    def per_day(where: str, params: dict[str, object]) -> tuple[I64, F64, F64]:
        found = store.query(
            f"SELECT COUNT(wash_l) AS n, SUM(wash_l) AS l FROM {quote_ident(str(profile.kind))} "  # noqa: S608
            f"WHERE community = $c AND device = $d AND time >= $a AND time <= $b{where} "
            "GROUP BY time(1d) fill(none) tz('Asia/Shanghai')",
            params={"c": community, "d": device, "a": start_ns, "b": end_ns, **params},
        )
        if not found or len(found[0]) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        s = found[0]
        return s.time.astype(np.int64), np.nan_to_num(s.values("n")), np.nan_to_num(s.values("l"))

    out = {cls: per_day(" AND vehicle_class = $v", {"v": cls}) for cls in classes}
    days, washes, litres = per_day("", {})
    rest_washes, rest_litres = washes.copy(), litres.copy()
    for cls_days, cls_washes, cls_litres in out.values():
        at = np.searchsorted(days, cls_days)  # every classified day is a day of the total
        rest_washes[at] -= cls_washes
        rest_litres[at] -= cls_litres
    out[UNCLASSIFIED] = (days, np.maximum(rest_washes, 0.0), np.maximum(rest_litres, 0.0))
    return out
