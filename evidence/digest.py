"""Daily digests of the stored readings, chained: a reading edited, deleted or inserted after the fact
changes its day's digest, and a digest row edited in SQL breaks the chain.

For a device and an Asia/Shanghai day, every point InfluxDB holds for the device in that day becomes
one canonical line (time in ns, the tag set, every field with its value, sorted), the lines are sorted,
and the day's digest is the SHA-256 of their concatenation. A day holds the readings of (00:00, 24:00]
local time, the verification engine's rule (a reading at t closes the interval ending at t, which
belongs to the day of t - 1 ns): the reading at midnight that closes a year is digested with that year.
Days without readings have a digest too (of nothing), so points inserted into an empty day are found.
Tag keys InfluxDB reports empty are left out. Each day's `chain` is
SHA-256(previous chain + digest); the first day of a device chains to a genesis value naming the
community and device. Pure functions over InfluxQL results (store.influx.Series); evidence.jobs does
the I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from store.influx import Series
from verification.checks import DAY_NS, SHANGHAI_OFFSET_NS

EPOCH_DAY = dt.date(1970, 1, 1)
FORMAT = "jieshui-evidence/2"
EMPTY = hashlib.sha256(b"").hexdigest()


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 (Asia/Shanghai calendar)."""
    return (day - EPOCH_DAY).days


def day_of(number: int) -> dt.date:
    """The date of a day number."""
    return EPOCH_DAY + dt.timedelta(days=number)


def reading_day(time_ns: int) -> dt.date:
    """The day a reading at `time_ns` belongs to: the day of time - 1 ns (a day is (00:00, 24:00])."""
    return day_of((time_ns - 1 + SHANGHAI_OFFSET_NS) // DAY_NS)


def day_bounds_ns(day: dt.date) -> tuple[int, int]:
    """(start, end] of an Asia/Shanghai day in UTC nanoseconds: its readings are those with
    start < time <= end."""
    start = day_number(day) * DAY_NS - SHANGHAI_OFFSET_NS
    return start, start + DAY_NS


def _value(v: object) -> str | None:
    """A field value as it is written into the canonical line (None: the field is absent here)."""
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else repr(float(v))
    if isinstance(v, int | np.integer):
        return repr(float(v))  # InfluxDB's JSON gives 12 for 12.0: numbers are compared as floats
    return json.dumps(str(v), ensure_ascii=False)


def canonical_lines(series: Iterable[Series]) -> dict[int, list[str]]:
    """Day number -> the canonical lines of the points of that day, from `GROUP BY *` results."""
    days: dict[int, list[str]] = {}
    for s in series:
        # InfluxDB 1.x fills tag keys a series lacks with "" under GROUP BY *, depending on the shards a
        # query touched: line protocol has no empty tag values, so they are not part of the point
        tags = ",".join(f"{k}={v}" for k, v in sorted(s.tags.items()) if v != "")
        names = sorted(s.columns)
        times = s.time.astype("int64")
        local_days = (times - 1 + SHANGHAI_OFFSET_NS) // DAY_NS
        for i, t in enumerate(times):
            fields = []
            for name in names:
                text = _value(s.columns[name][i])
                if text is not None:
                    fields.append(f"{name}={text}")
            days.setdefault(int(local_days[i]), []).append(f"{int(t)}|{tags}|{','.join(fields)}")
    return days


@dataclass(frozen=True)
class DayDigest:
    """One device's day: how many points, and their digest."""

    day: dt.date
    points: int
    digest: str


def digest_days(lines: Mapping[int, Sequence[str]], first: dt.date, last: dt.date) -> list[DayDigest]:
    """The digest of every day from `first` to `last` (inclusive), empty days included."""
    out = []
    for number in range(day_number(first), day_number(last) + 1):
        day_lines = sorted(lines.get(number, ()))
        h = hashlib.sha256()
        for line in day_lines:
            h.update(line.encode("utf-8"))
            h.update(b"\n")
        out.append(DayDigest(day_of(number), len(day_lines), h.hexdigest()))
    return out


def genesis(community: str, device: str) -> str:
    """What a device's first day chains to."""
    return hashlib.sha256(f"{FORMAT}|{community}|{device}".encode()).hexdigest()


def link(previous_chain: str, digest: str) -> str:
    """The chain value of a day: SHA-256(previous chain + this day's digest)."""
    return hashlib.sha256((previous_chain + digest).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class StoredDay:
    """A digest row as kept in SQL."""

    day: dt.date
    points: int
    digest: str
    chain: str


@dataclass(frozen=True)
class Finding:
    """A day whose evidence no longer holds."""

    day: dt.date
    kind: str  # edited | deleted | inserted | chain_broken | gap
    stored_points: int
    points_now: int
    message: str


def compare(
    community: str, device: str, stored: Sequence[StoredDay], now: Sequence[DayDigest]
) -> list[Finding]:
    """Findings for one device: days whose recomputed digest differs from the stored one (named by what
    the point count says happened) and rows whose chain does not follow from the rows before them."""
    findings = []
    recomputed = {d.day: d for d in now}
    previous = genesis(community, device)
    expected_day: dt.date | None = None
    for row in stored:
        if expected_day is not None and row.day != expected_day:
            skipped = f"the digests skip from {expected_day} to {row.day}"
            findings.append(Finding(row.day, "gap", row.points, row.points, skipped))
        if link(previous, row.digest) != row.chain:
            altered = "the stored digest does not chain to the day before: the digest table was altered"
            findings.append(Finding(row.day, "chain_broken", row.points, row.points, altered))
        previous, expected_day = row.chain, row.day + dt.timedelta(days=1)
        day = recomputed.get(row.day)
        if day is None or day.digest == row.digest:
            continue
        if day.points < row.points:
            kind, what = "deleted", f"{row.points - day.points} of its {row.points} points are gone"
        elif day.points > row.points:
            kind, what = "inserted", f"{day.points - row.points} points were added to its {row.points}"
        else:
            kind, what = "edited", f"its {row.points} points are all there but their content changed"
        findings.append(Finding(row.day, kind, row.points, day.points, what))
    return findings
