"""`make demo`'s program: starts both servers, shows a reading written and read back, stops on Ctrl-C."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[2]


def _server_pids(path: Path, demo_pid: int) -> list[int]:
    """Processes whose command line names `path`, other than the demo itself and this test."""
    result = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True, check=False)
    return [int(p) for p in result.stdout.split() if int(p) not in (os.getpid(), demo_pid)]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_starts_servers_round_trips_a_reading_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    var = tmp_path / "var"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jieshui.cli", "demo", "--site", "examples/community.yaml", "--var", str(var)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _check_running_demo(proc, var)
        proc.send_signal(stop_signal)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # a failed check above must not leave the demo and its servers behind
            proc.terminate()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "stopped: API, simulators, collector, mosquitto and influxd are down." in rest
    assert _server_pids(var, proc.pid) == []
    assert (var / "demo" / "influxd" / "data").is_dir()  # data stays under var/ for the next run


def _check_running_demo(proc: subprocess.Popen[str], var: Path) -> None:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("  ") and "readings in" in line and "readings in 0 " not in line:
            break  # a live count with readings: the collector is collecting
    output = "\n".join(lines)
    assert "Press Ctrl-C to stop." in output, output
    last_year = dt.date.today().year - 1
    assert re.search(rf"Backfilling {last_year} for examples/community.yaml at 1h resolution", output)
    assert re.search(r"  [\d,]+ points of 5 devices in [\d.]+ s", output), output
    assert re.search(
        r"  xinjing-6 +rainwater-daily=\w+  river-yearly=\w+  micro-wash=\w+  per-capita=\w+", output
    )
    report = re.search(r"report +: (\S+\.html)  (\S+\.pdf)", output)
    assert report, output
    assert Path(report.group(1)).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert Path(report.group(2)).read_bytes().startswith(b"%PDF")
    influx_url = re.search(r"InfluxDB\s+: (http://127\.0\.0\.1:(\d+))", output)
    assert influx_url is not None, output
    assert re.search(r"MQTT broker\s+: mqtt://127\.0\.0\.1:\d+", output)
    assert re.search(r"collector\s+: http://127\.0\.0\.1:\d+/healthz", output)
    assert re.search(r"readings in [1-9]\d*  written \d+", output), output

    # The API answers with the keys the demo printed: the manager sees their community's live status,
    # the evaluator the verdicts the demo kept as verification runs.
    api = re.search(r"API\s+: (http://127\.0\.0\.1:\d+)/docs", output)
    manager = re.search(r"manager key for xinjing-6: (jsk_\S+)", output)
    evaluator = re.search(r"evaluator key: (jsk_\S+)", output)
    assert api, output
    assert manager, output
    assert evaluator, output
    status = httpx.get(
        f"{api.group(1)}/communities/xinjing-6/status", headers={"X-API-Key": manager.group(1)}
    )
    assert status.status_code == 200, status.text
    assert {d["device"] for d in status.json()["devices"]} >= {"rw-controller", "master-meter"}
    run = httpx.get(
        f"{api.group(1)}/communities/xinjing-6/verifications/{last_year}",
        headers={"X-API-Key": evaluator.group(1)},
    )
    assert run.status_code == 200, run.text
    assert run.json()["year"] == last_year
    # the backfilled year was digested: the evidence check finds every day intact
    assert re.search(r"evidence: [\d,]+ device-days digested and chained", output), output
    evidence = httpx.get(
        f"{api.group(1)}/communities/xinjing-6/evidence/{last_year}",
        headers={"X-API-Key": evaluator.group(1)},
    )
    assert evidence.status_code == 200, evidence.text
    assert evidence.json()["ok"] is True
    assert {d["device"]: d["days_checked"] for d in evidence.json()["devices"]}["master-meter"] >= 365
    assert httpx.get(f"{api.group(1)}/communities", headers={"X-API-Key": "jsk_nope_nope"}).status_code == 401

    # A third-party client (the influx CLI) finds last year's backfill in the demo's database: hourly
    # readings stamped at the end of each hour of the Shanghai year.
    query = subprocess.run(
        [
            "influx",
            "-port",
            influx_url.group(2),
            "-database",
            "jieshui",
            "-format",
            "csv",
            "-execute",
            f"SELECT count(volume_m3) FROM water_meter WHERE time > '{last_year - 1}-12-31T16:00:00Z' "
            f"AND time <= '{last_year}-12-31T16:00:00Z'",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    assert query.stdout.strip().splitlines()[-1].endswith(f",{2 * 8760}")
    # influxd, mosquitto, the collector and the socat serial line, all with paths under var/
    assert len(_server_pids(var, proc.pid)) >= 3
