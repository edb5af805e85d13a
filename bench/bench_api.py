"""API throughput: requests per second of a community's status endpoint, as a ratio to a bare FastAPI
endpoint served by the same uvicorn process in the same run.

A fresh influxd gets a fortnight of examples/district.yaml at 1-minute resolution; one uvicorn worker
serves the real app (real InfluxDB, SQLite) plus `GET /bench/bare`, which returns a constant with no
key, no database and no InfluxDB. wrk loads each endpoint in turn, twice, from a second process.
Run: `.venv/bin/python -m bench.bench_api [--seconds 10] [--connections 8]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).parents[1]
SITE = ROOT / "examples" / "district.yaml"
START, END = dt.date(2026, 1, 1), dt.date(2026, 1, 15)
NOW = dt.datetime(2026, 1, 14, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def app_factory() -> FastAPI:
    """The app uvicorn serves (`--factory`): the real one, clock pinned into the data, plus a bare route."""
    from api.app import create_app
    from api.db import Database
    from api.deps import ApiContext
    from jieshui.inventory import load_site
    from store.influx import InfluxConfig, InfluxStore

    ctx = ApiContext(
        site=load_site(SITE),
        db=Database(os.environ["BENCH_DB_URL"]),
        store=InfluxStore(InfluxConfig(url=os.environ["BENCH_INFLUX_URL"], database="bench")),
        clock=lambda: NOW.astimezone(dt.UTC),
    )
    app = create_app(ctx)

    @app.get("/bench/bare")
    def bare() -> dict[str, bool]:
        return {"ok": True}

    return app


def _wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> float:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed or saw errors on {url}:\n{out}")
    return float(m.group(1))


def run(seconds: int, connections: int) -> dict[str, object]:
    from api.auth import Role, create_key
    from api.db import Database
    from jieshui.inventory import load_site
    from jieshui.services import InfluxServer, free_port
    from simulators.backfill import backfill
    from store.influx import InfluxConfig, InfluxStore

    if shutil.which("wrk") is None:
        raise SystemExit("bench_api needs wrk (Debian package wrk; scripts/bootstrap.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp, InfluxServer(Path(tmp) / "influxd") as server:
        store = InfluxStore(InfluxConfig(url=server.url, database="bench", timeout_s=300))
        store.bootstrap()
        stats = backfill(load_site(SITE), store, START, END, step_s=60)
        store.close()
        db_url = f"sqlite:///{tmp}/api.sqlite3"
        db = Database(db_url)
        with db.session() as s:
            _, key = create_key(s, Role.MANAGER, ["xinjing-6"], "bench", "bench", dt.datetime.now(dt.UTC))
        db.close()
        port = free_port()
        env = {**os.environ, "BENCH_DB_URL": db_url, "BENCH_INFLUX_URL": server.url}
        uvicorn = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.bench_api:app_factory", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/bench/bare", timeout=2).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            status_url = f"{base}/communities/xinjing-6/status"
            auth = {"X-API-Key": key}
            httpx.get(status_url, headers=auth, timeout=30).raise_for_status()  # warm-up, and it must work
            bare, status = [], []
            for _ in range(2):  # alternate, so drift on a shared machine hits both alike
                bare.append(_wrk(f"{base}/bench/bare", seconds, connections, {}))
                status.append(_wrk(status_url, seconds, connections, auth))
        finally:
            uvicorn.terminate()
            uvicorn.wait(timeout=10)
    bare_rps, status_rps = max(bare), max(status)
    return {
        "benchmark": "api",
        "points": stats.points,
        "connections": connections,
        "seconds": seconds,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "bare_rps": [round(x, 1) for x in bare],
        "status_rps": [round(x, 1) for x in status],
        "status_over_bare": round(status_rps / bare_rps, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.connections), indent=2))


if __name__ == "__main__":
    main()
