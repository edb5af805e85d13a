"""What Grafana does to an InfluxQL query before sending it: time range and variables substituted.

The rules follow Grafana's InfluxQL datasource: `$timeFilter` is `time >= <from>ms and time <= <to>ms`;
`$__interval` is the range over the panel's max data points rounded to a whole interval;
`$__range_s`, `${__from}`, `${__to}` are the range in seconds and its ends in epoch ms; a variable used
in a regex (`=~ /^$var$/`) becomes its value regex-escaped, several values `(a|b)`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
INTERVALS_S = (1, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400)
GLOBALS = {"timeFilter", "__interval", "__range_s", "__from", "__to"}


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime
    end: dt.datetime

    @property
    def ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)


def resolve(expr: str, now: dt.datetime) -> dt.datetime:
    """Grafana's relative time (`now`, `now-7d`, `now/d`, `now/M`, `now-1y/y`) in Asia/Shanghai."""
    m = re.fullmatch(r"now(?:-(\d+)([smhdwMy]))?(?:/([dMy]))?", expr)
    if m is None:
        raise ValueError(f"unsupported relative time {expr!r}")
    t = now.astimezone(SHANGHAI)
    if m.group(1):
        n, unit = int(m.group(1)), m.group(2)
        if unit == "y":
            t = t.replace(year=t.year - n)
        elif unit == "M":
            months = t.year * 12 + t.month - 1 - n
            t = t.replace(year=months // 12, month=months % 12 + 1)
        else:
            t -= dt.timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[unit])
    return t, m.group(3)  # type: ignore[return-value]


def time_range(start: str, end: str, now: dt.datetime) -> TimeRange:
    """A dashboard's or a panel's range: `/unit` rounds the start down and the end up to that unit."""
    t0, round0 = resolve(start, now)
    t1, round1 = resolve(end, now)
    return TimeRange(_round(t0, round0, up=False), _round(t1, round1, up=True))


def _round(t: dt.datetime, unit: str | None, *, up: bool) -> dt.datetime:
    if unit is None:
        return t
    floor = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("M", "y"):
        floor = floor.replace(day=1)
    if unit == "y":
        floor = floor.replace(month=1)
    if not up:
        return floor
    if unit == "d":
        nxt = floor + dt.timedelta(days=1)
    elif unit == "M":
        nxt = (floor + dt.timedelta(days=32)).replace(day=1)
    else:
        nxt = floor.replace(year=floor.year + 1)
    return nxt - dt.timedelta(milliseconds=1)


def interval(rng: TimeRange, max_points: int = 1000) -> str:
    seconds = (rng.end - rng.start).total_seconds() / max_points
    chosen = next((s for s in INTERVALS_S if s >= seconds), INTERVALS_S[-1])
    return f"{chosen}s"


def regex_value(values: Sequence[str]) -> str:
    escaped = [re.escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def variables_used(query: str) -> set[str]:
    return set(re.findall(r"\$\{?([A-Za-z_]\w*)", query))


def interpolate(query: str, rng: TimeRange, values: Mapping[str, Sequence[str]]) -> str:
    """The query Grafana would send for this range and these variable values."""
    start_ms, end_ms = rng.ms
    out = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    out = out.replace("$__interval", interval(rng))
    out = out.replace("$__range_s", str(int((end_ms - start_ms) / 1000)))
    out = out.replace("${__from}", str(start_ms)).replace("${__to}", str(end_ms))
    for name in sorted(values, key=len, reverse=True):
        out = out.replace("${" + name + "}", regex_value(values[name]))
        out = out.replace("$" + name, regex_value(values[name]))
    left = variables_used(out)
    if left:
        raise ValueError(f"unresolved variables {sorted(left)} in {query}")
    return out
