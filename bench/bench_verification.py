"""Verification speed: evaluating one community-year against reading it from InfluxDB, same run.

Backfills a year of examples/community.yaml at 1-minute resolution into a fresh influxd, then times
`read_community` (InfluxQL to numpy) and `evaluate` (every check and verdict) on the same data.
Target (issue 5): evaluating takes less time than reading.
Run: `.venv/bin/python -m bench.bench_verification [--step-s 60]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

from jieshui.inventory import load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from store.influx import InfluxConfig, InfluxStore
from verification.engine import evaluate, read_community

ROOT = Path(__file__).parents[1]


def run(step_s: int) -> dict[str, object]:
    """Backfill, then time reading and evaluating."""
    site = load_site(ROOT / "examples" / "community.yaml")
    with tempfile.TemporaryDirectory() as tmp, InfluxServer(Path(tmp) / "influxd") as server:
        store = InfluxStore(InfluxConfig(url=server.url, database="bench", timeout_s=300))
        store.bootstrap()
        stats = backfill(site, store, dt.date(2025, 1, 1), dt.date(2026, 1, 1), step_s=step_s)
        t0 = time.perf_counter()
        data = read_community(store, site, "xinjing-6", 2025)
        read_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = evaluate(site, "xinjing-6", 2025, data)
        evaluate_s = time.perf_counter() - t1
        store.close()
    return {
        "benchmark": "verification",
        "step_s": step_s,
        "points": stats.points,
        "readings_read": sum(len(s.time_ns) for s in data.values()),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "read_s": round(read_s, 3),
        "evaluate_s": round(evaluate_s, 3),
        "evaluate_over_read": round(evaluate_s / read_s, 3),
        "verdicts": {c.id: c.verdict for c in result.claims},
    }


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--step-s", type=int, default=60)
    print(json.dumps(run(parser.parse_args().step_s), indent=2))


if __name__ == "__main__":
    main()
