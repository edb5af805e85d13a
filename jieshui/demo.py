"""`make demo`: the whole system on this machine, on embedded defaults, with no Docker.

It starts its own influxd and mosquitto from the system's binaries with their data under `var/demo/`,
bootstraps the database, backfills last year for the inventory (hourly, so it takes seconds), prints
every community's verdicts for it (kept as verification runs for the API) and writes one report, starts
the API (SQLite under var/demo/, a manager and an evaluator key printed once), the simulated devices
live (accelerated) and the collector, prints where everything is and then live counts from the
collector's health endpoint, and stops everything on Ctrl-C (or SIGTERM), in order: API, simulators,
collector, broker, database.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from api.auth import Role, audit, create_key
from api.db import Database, VerificationRun
from evidence.jobs import check as check_evidence
from evidence.jobs import record_digests
from jieshui.errors import JieshuiError
from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer, MosquittoServer, free_port
from jieshui.settings import parse_mqtt_url
from simulators.backfill import backfill
from simulators.runner import LiveSimulation, parse_step, start_live
from store.influx import InfluxConfig, InfluxStore
from verification.engine import verify
from verification.report import render_html, render_pdf

DEMO_DATABASE = "jieshui"
#: The live simulators run this many simulated seconds per second, and the collector polls this often.
DEMO_SPEED = 60.0
DEMO_POLL_S = 5.0
API_PORT = 8000  # the API's port when free, else any free one


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(site_path: Path, var_dir: Path, influx_port: int | None, mqtt_port: int | None) -> int:
    """Run the demo until interrupted; return the exit status."""
    site = load_site(site_path)
    demo_dir = var_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    lock = (demo_dir / "demo.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another `jieshui demo` is running with {demo_dir}; stop it first", file=sys.stderr)
        return 1
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored, and Python
    # then never turns Ctrl-C (or `kill -INT`) into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    influx = InfluxServer(demo_dir / "influxd", port=influx_port)
    broker = MosquittoServer(demo_dir / "mosquitto", port=mqtt_port)
    sim: LiveSimulation | None = None
    collector: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    try:
        influx.start()
        broker.start()
        config = InfluxConfig(url=influx.url, database=DEMO_DATABASE, timeout_s=60)
        last_year = dt.date.today().year - 1
        step = os.environ.get("JIESHUI_DEMO_BACKFILL_STEP", "1h")
        print(f"Backfilling {last_year} for {site_path} at {step} resolution...", flush=True)
        t0 = time.monotonic()
        with InfluxStore(config) as store:
            store.bootstrap()
            year = (dt.date(last_year, 1, 1), dt.date(last_year + 1, 1, 1))
            truth = demo_dir / f"truth-{last_year}.json"
            stats = backfill(site, store, *year, step_s=parse_step(step), truth_path=truth)
        elapsed = time.monotonic() - t0
        print(f"  {stats.points:,} points of {stats.devices} devices in {elapsed:.1f} s", flush=True)
        api_db = f"sqlite:///{demo_dir / 'api.sqlite3'}"
        report = _verdicts(site, config, last_year, demo_dir, api_db)
        keys = _demo_keys(site, api_db)
        api, api_url = _start_api(site_path, demo_dir, influx, api_db)

        collector, health_url = _start_collector(site_path, demo_dir, influx, broker)
        sim = start_live(
            site, speed=DEMO_SPEED, broker=parse_mqtt_url(broker.url), work_dir=demo_dir / "simulate"
        )
        print("Jieshui demo is running.", flush=True)
        print(f"  site inventory : {site_path} ({site.summary()})")
        print(f"  InfluxDB       : {influx.url}  database {DEMO_DATABASE!r}")
        print(f"                   data {influx.data_dir}")
        print(f"  MQTT broker    : {broker.url}  data {broker.data_dir}")
        print(f"  simulators     : {len(sim.modbus)} Modbus endpoints, "
              f"{len(sim.mqtt.devices) if sim.mqtt else 0} MQTT devices, {DEMO_SPEED:g}x")  # fmt: skip
        print(f"  collector      : {health_url}/healthz  {health_url}/metrics")
        print(f"                   polls every {DEMO_POLL_S:g} s")
        print(f"  API            : {api_url}/docs  (log {demo_dir / 'api.log'})")
        for role, (community, key) in keys.items():
            scope = f" for {community}" if community else ""
            print(f"                   {role} key{scope}: {key}")
        print(
            f"                   try: curl -H 'X-API-Key: {keys['manager'][1]}' "
            f"{api_url}/communities/{keys['manager'][0]}/status"
        )
        print(f"  ground truth   : {demo_dir / f'truth-{last_year}.json'}")
        print(f"  report         : {report.with_suffix('.html')}  {report}")
        print(f"  logs           : {influx.log_path}")
        print(f"                   {broker.log_path}")
        print(f"                   {demo_dir / 'collector.log'}")
        print("Press Ctrl-C to stop.", flush=True)
        while influx.running and broker.running and collector.poll() is None and api.poll() is None:
            time.sleep(5)
            print(_live_counts(health_url), flush=True)
        print("a process stopped unexpectedly; see the logs above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        if api is not None and api.poll() is None:
            api.terminate()
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
        if sim is not None:
            sim.stop()
        if collector is not None and collector.poll() is None:
            collector.send_signal(signal.SIGINT)
            try:
                collector.wait(30)
            except subprocess.TimeoutExpired:
                collector.kill()
                collector.wait()
        broker.stop()
        influx.stop()
        print("stopped: API, simulators, collector, mosquitto and influxd are down.", flush=True)
        lock.close()


def _verdicts(site: Site, config: InfluxConfig, year: int, demo_dir: Path, api_db: str) -> Path:
    """Print every community's verdicts for `year`, keep them as verification runs for the API (an
    evaluator finds them there), and write the first community's report (HTML, PDF)."""
    print(f"Verdicts for {year} (jieshui verify):", flush=True)
    report: Path | None = None
    db = Database(api_db)
    with InfluxStore(config) as store:
        # the backfilled year is settled: digest it, as the daily job would have (docs/evidence.md)
        now = dt.datetime.now(dt.UTC)
        days = sum(sum(record_digests(db, store, site, c.id, dt.date(year, 12, 31), now).values())
                   for _, c in site.communities())  # fmt: skip
        print(f"  evidence: {days:,} device-days digested and chained (jieshui evidence check)", flush=True)
        for _, community in site.communities():
            evidence = check_evidence(db, store, site, community.id, year)
            result = verify(store, site, community.id, year, evidence.changed_days())
            with db.session() as s:
                s.add(VerificationRun(community=community.id, year=year, run_by="demo",
                                      result=result.model_dump(mode="json", by_alias=True),
                                      run_at=dt.datetime.now(dt.UTC)))  # fmt: skip
            line = "  ".join(f"{c.id}={c.verdict}" for c in result.claims)
            print(f"  {community.id:<18} {line}", flush=True)
            if report is None:
                html = render_html(site, result, "zh-CN")
                pdf = demo_dir / f"report-{community.id}-{year}.pdf"
                pdf.with_suffix(".html").write_text(html, encoding="utf-8")
                try:
                    render_pdf(html, pdf)
                except JieshuiError as exc:
                    print(f"  (no PDF: {exc})", flush=True)
                report = pdf
    db.close()
    assert report is not None  # noqa: S101 (an inventory has at least one community)
    return report


def _demo_keys(site: Site, api_db: str) -> dict[str, tuple[str | None, str]]:
    """A manager key for the first community and an evaluator key, new for this run (shown once)."""
    first = next(c.id for _, c in site.communities())
    db = Database(api_db)
    now = dt.datetime.now(dt.UTC)
    out: dict[str, tuple[str | None, str]] = {}
    with db.session() as s:
        for role, communities in ((Role.MANAGER, [first]), (Role.EVALUATOR, [])):
            row, text = create_key(s, role, communities, f"demo {role}", "demo", now)
            audit(s, "demo", "admin", "key.create", f"key/{row.id}", now, key_role=str(role))
            out[str(role)] = (communities[0] if communities else None, text)
    db.close()
    return out


def _start_api(
    site_path: Path, demo_dir: Path, influx: InfluxServer, api_db: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = API_PORT if _port_free(API_PORT) else free_port()
    log = (demo_dir / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jieshui.cli", "api", "--site", str(site_path), "--port", str(port),
         "--db-url", api_db, "--influx-url", influx.url, "--influx-database", DEMO_DATABASE],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise JieshuiError(f"the API did not start; see {demo_dir / 'api.log'}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_collector(
    site_path: Path, demo_dir: Path, influx: InfluxServer, broker: MosquittoServer
) -> tuple[subprocess.Popen[bytes], str]:
    log = (demo_dir / "collector.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jieshui.cli", "collect", "--site", str(site_path), "--collector-id", "demo",
         "--buffer", str(demo_dir / "collector" / "buffer.sqlite3"), "--health-port", "0",
         "--mqtt-url", broker.url, "--poll-interval", str(DEMO_POLL_S),
         "--influx-url", influx.url, "--influx-database", DEMO_DATABASE],
        stdout=subprocess.PIPE, stderr=log, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None  # noqa: S101
    line = proc.stdout.readline().decode()
    match = re.search(r"health on (http://\S+)/healthz", line)
    if match is None:
        proc.kill()
        raise JieshuiError(f"the collector did not start; see {demo_dir / 'collector.log'}")
    return proc, match.group(1)


def _live_counts(health_url: str) -> str:
    """One line of live figures from the collector's /metrics."""
    try:
        text = httpx.get(f"{health_url}/metrics", timeout=3).text
    except httpx.HTTPError as exc:
        return f"  collector not answering: {exc}"

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    return (
        f"  {time.strftime('%H:%M:%S')}  readings in {total('jieshui_readings_in_total'):.0f}  "
        f"written {total('jieshui_points_written_total'):.0f}  buffer {total('jieshui_buffer_depth'):.0f}  "
        f"dead letters {total('jieshui_dead_letters_total'):.0f}"
    )
