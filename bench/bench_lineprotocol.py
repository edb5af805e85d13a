"""Line-protocol encoding: Jieshui's encoder against influxdb-client's `Point.to_line_protocol`.

Both encode the same readings (a device's series key with tags, three fields, a time) in the same run;
the figure that matters is the ratio. Our encoder also reuses the series key a device keeps between
readings, which is how the collector calls it; the fresh-key figure is reported too.
Run: `.venv/bin/python -m bench.bench_lineprotocol [--points N]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from influxdb_client.client.write.point import Point as ClientPoint

from store.lineprotocol import encode_line, encode_point, series_key

TAGS = {
    "district": "changning",
    "community": "新泾六村",
    "device": "rw-controller",
    "kind": "rainwater_system",
    "collector": "c1",
    "profile": "hy-rwc200@1",
}


def _readings(n: int) -> list[tuple[dict[str, float | int], int]]:
    return [
        ({"level_pct": 40 + i % 50 / 7, "volume_m3": 1000.0 + i / 3, "pump_state": i % 2}, i * 10**9)
        for i in range(n)
    ]


def _best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(points: int) -> dict[str, object]:
    """Time the three encoders on `points` readings; return the figures and ratios."""
    readings = _readings(points)

    def client() -> list[str]:
        out = []
        for fields, t in readings:
            p = ClientPoint("rainwater_system")
            for k, v in TAGS.items():
                p.tag(k, v)
            for k, v in fields.items():
                p.field(k, v)
            out.append(p.time(t).to_line_protocol())
        return out

    def ours_fresh() -> list[str]:
        return [encode_point("rainwater_system", TAGS, fields, t) for fields, t in readings]

    key = series_key("rainwater_system", TAGS)

    def ours_cached_key() -> list[str]:
        return [encode_line(key, fields, t) for fields, t in readings]

    assert client() == ours_fresh() == ours_cached_key(), "encoders disagree: the comparison is void"
    baseline = _best_of(client)
    fresh = _best_of(ours_fresh)
    cached = _best_of(ours_cached_key)
    return {
        "benchmark": "lineprotocol",
        "points": points,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "baseline_influxdb_client_points_per_s": points / baseline,
        "ours_fresh_key_points_per_s": points / fresh,
        "ours_cached_key_points_per_s": points / cached,
        "speedup_fresh_key": baseline / fresh,
        "speedup_cached_key": baseline / cached,
    }


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=50_000)
    print(json.dumps(run(parser.parse_args().points), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
