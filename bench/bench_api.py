"""API throughput: requests per second of a community's status endpoint, as a ratio to a bare FastAPI
endpoint served by the same uvicorn process in the same run (issue 9: target >= 0.5).

A fresh influxd gets a fortnight of examples/district.yaml at 1-minute resolution; one uvicorn worker
serves the real app (real InfluxDB, SQLite) plus `GET /bench/bare`, which returns a constant with no
key, no database and no InfluxDB. wrk loads each endpoint in turn, twice, from a second process.
The app runs as deployed (the status reused for JIESHUI_API_STATUS_CACHE_S = 10 s); a second,
shorter run with the cache off gives the cost of computing a status (figures: `status_cold_rps`).
Run: `.venv/bin/python -m bench.bench_api [--budget-s 60] [--connections 8]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
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

from bench.common import Result
from bench.common import main as bench_main
from jieshui.services import InfluxServer

ROOT = Path(__file__).parents[1]
DEFAULT_BUDGET_S = 60
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
        # as `jieshui api` runs by default (JIESHUI_API_*_CACHE_S), or with every cache off
        status_cache_s=float(os.environ.get("BENCH_CACHE_S", "10")),
        auth_cache_s=float(os.environ.get("BENCH_CACHE_S", "10")),
        registry_cache_s=float(os.environ.get("BENCH_CACHE_S", "10")),
    )
    app = create_app(ctx)

    @app.get("/bench/bare")
    async def bare() -> dict[str, bool]:  # the leanest FastAPI route: no thread hop, no I/O
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


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    from jieshui.services import free_port

    port = free_port()
    uvicorn = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.bench_api:app_factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/bench/bare", timeout=2).raise_for_status()
            return uvicorn, base
        except httpx.TransportError:
            if time.monotonic() > deadline:
                uvicorn.kill()
                raise
            time.sleep(0.2)


def run(budget_s: float, connections: int = 8) -> Result:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_api needs wrk (Debian package wrk; scripts/bootstrap.sh installs it)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxServer(Path(tmp) / "influxd")
        server.start()
        try:
            return _measure(server, tmp, budget_s, connections, started)
        finally:
            server.stop()


def _measure(server: InfluxServer, tmp: str, budget_s: float, connections: int, started: float) -> Result:
    from api.auth import Role, create_key
    from api.db import Database
    from jieshui.inventory import load_site
    from simulators.backfill import backfill
    from store.influx import InfluxConfig, InfluxStore

    store = InfluxStore(InfluxConfig(url=server.url, database="bench", timeout_s=300))
    store.bootstrap()
    stats = backfill(load_site(SITE), store, START, END, step_s=60)
    store.close()
    db_url = f"sqlite:///{tmp}/api.sqlite3"
    db = Database(db_url)
    with db.session() as s:
        _, key = create_key(s, Role.MANAGER, ["xinjing-6"], "bench", "bench", dt.datetime.now(dt.UTC))
    db.close()
    # five wrk runs share what is left of the budget: bare and status twice, cold once
    seconds = max(2, int((budget_s - (time.monotonic() - started) - 10) / 5))
    env = {**os.environ, "BENCH_DB_URL": db_url, "BENCH_INFLUX_URL": server.url}
    auth = {"X-API-Key": key}
    path = "/communities/xinjing-6/status"
    uvicorn, base = _serve({**env, "BENCH_CACHE_S": "10"})
    try:
        httpx.get(base + path, headers=auth, timeout=30).raise_for_status()  # warm-up; it must work
        bare, status = [], []
        for _ in range(2):  # alternate, so drift on a shared machine hits both alike
            bare.append(_wrk(f"{base}/bench/bare", seconds, connections, {}))
            status.append(_wrk(base + path, seconds, connections, auth))
    finally:
        uvicorn.terminate()
        uvicorn.wait(timeout=10)
    uvicorn, base = _serve({**env, "BENCH_CACHE_S": "0"})
    try:
        cold = _wrk(base + path, seconds, connections, auth)
    finally:
        uvicorn.terminate()
        uvicorn.wait(timeout=10)
    bare_rps, status_rps = max(bare), max(status)
    return Result(
        name="api",
        title="API: community status vs a bare FastAPI endpoint, one uvicorn worker, wrk",
        baseline_label="bare FastAPI endpoint",
        baseline=round(bare_rps, 1),
        ours_label="GET /communities/{id}/status (manager key, caches 10 s as deployed)",
        ours=round(status_rps, 1),
        unit="requests/s",
        ratio=round(status_rps / bare_rps, 4),
        target=0.5,
        target_op=">=",
        figures={
            "points": stats.points,
            "connections": connections,
            "seconds_per_run": seconds,
            "bare_rps": [round(x, 1) for x in bare],
            "status_rps": [round(x, 1) for x in status],
            "status_cold_rps": round(cold, 1),
            "cold_over_bare": round(cold / bare_rps, 4),
        },
        notes=[
            "status_cold_rps: the same endpoint with every cache off (each request authenticates in SQL "
            "and computes the status: 13 InfluxQL queries)"
        ],
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--connections", type=int, default=8)

    bench_main(__doc__ or "", DEFAULT_BUDGET_S, run, options)


if __name__ == "__main__":
    main()
