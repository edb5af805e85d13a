"""Memory: the collector process's resident set with a city-scale inventory and a million readings
waiting, and whether it grows under a steady load.

Real mosquitto and influxd; the collector runs as operators run it (`jieshui collect`, its own
process, default settings) on a synthetic inventory of 1,000 car-wash units (profile wx-cw01 over
MQTT, ten communities of 100; MQTT devices are the cheapest to simulate in bulk). RSS is VmRSS of
/proc/<pid>/status, in MB (2**20 bytes), sampled every 0.5 s; a phase's figure is its highest sample.

1. Idle: the inventory, an empty buffer, InfluxDB reachable, no messages: the floor.
2. Backlog: the buffer file pre-filled with 1,000,000 pending rainwater-controller lines (~680 bytes,
   what the pipeline stores; ~800 MB on disk) and with the device state of a collector that has run
   for weeks (every device's de-duplication window full: 2,048 message ids, which the collector loads
   at start and keeps in memory), InfluxDB unreachable (a closed port), and the devices publishing at
   200 msg/s meanwhile (QoS 1, another process), so the buffer keeps growing and the drainer keeps
   retrying. Target (issue 9): < 300 MB. `ratio` = backlog RSS / 300 MB (<= 1).
3. Soak: a buffer with that same long-running device state and no lines (the windows are at their
   bound, so growth would be a leak, not windows filling up), InfluxDB reachable, and the devices
   publishing at a steady 1,000 msg/s (each unit every second: about 900 x its real rate, a status
   message every 15 minutes) for the rest of the budget (or `--soak-minutes`). "No growth" means:
   the least-squares slope of RSS over the second half of the soak is below 1 MB/min, AND the mean of
   the last quarter is within 5 % of the mean of the second quarter. It is reported in `figures` and
   `notes`, not in `ratio`; a 90 s budget gives a ~35 s soak, enough to see a leak of several MB/min,
   not a slow one: issue 9's 30-minute soak is `--soak-minutes 30`, outside `make bench`.
The weight of the full windows is `soak_first_mb - idle_rss_mb` (same inventory, same empty buffer).
Every message the publishers got a PUBACK for must be in InfluxDB after the soak (counted).

Run: `.venv/bin/python -m bench.bench_memory [--budget-s 90] [--soak-minutes N] [--soak-rate 1000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_ingest import STEP_S, T0_NS, realistic_lines
from bench.bench_latency import (
    CollectorProcess,
    Publisher,
    PublishPlan,
    carwash_site,
    count_points,
    cpu_seconds,
    topics,
)
from bench.common import Result
from bench.common import main as bench_main
from jieshui.inventory import Site

DEFAULT_BUDGET_S = 90
TARGET_MB = 300.0
DEVICES = 1000
BACKLOG_LINES = 1_000_000
SAMPLE_S = 0.5
SLOPE_MB_MIN = 1.0
QUARTER_SHARE = 0.05


def prefill(path: Path, lines: int, devices: int = DEVICES) -> None:
    """A buffer file holding `lines` pending rainwater-controller lines of `devices` devices at 60 s.

    Ten readings per device are encoded as the pipeline does and reused with successive times (the
    shape and size of each line is what matters here); written in one transaction, unsynced.
    """
    from collector.buffer import Buffer

    Buffer(path).close()  # the collector's schema
    shapes = [line.rsplit(" ", 1)[0] for line in realistic_lines(devices * 10, devices, check=False)]
    now = time.time_ns()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO pending (line, created_ns) VALUES (?, ?)",
            (
                (f"{shapes[i % len(shapes)]} {T0_NS + (i // devices) * STEP_S * 10**9}", now)
                for i in range(lines)
            ),
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def full_windows(path: Path, site: Site) -> int:
    """Store, for every device, the state of a collector that has run for weeks: its de-duplication
    window full (`SEEN_WINDOW` message ids, as `process_mqtt` keeps them) and its totalizers known.

    A wx-cw01 unit sends ~100 messages a day, so after three weeks its window is full; the ids here
    (10**9 and up) cannot collide with the sequence numbers the bench's publishers send (from 1).
    Returns the ids stored.
    """
    from collector.buffer import Buffer
    from collector.pipeline import SEEN_WINDOW, DeviceState

    # the state's JSON as the pipeline writes it; `from_json` builds whatever the pipeline keeps in memory
    state = json.dumps(
        {
            "last": {"wash_count": 0.0, "fresh_m3": 0.0, "recycled_m3": 0.0},
            "t": time.time_ns() - 86400 * 10**9,
            "seen": [str(10**9 + j) for j in range(SEEN_WINDOW)],
            "resets": 0,
        }
    )
    states = {
        f"{community.id}/{device.id}": DeviceState.from_json(state)
        for _, community in site.communities()
        for _, device in community.devices()
    }
    buffer = Buffer(path)
    buffer.commit([], states=states)
    buffer.close()
    return len(states) * SEEN_WINDOW


def transient(collector_id: str) -> dict[str, Any]:
    """A collector id of its own and an MQTT session that ends with the connection: a phase's
    collector must leave no session behind for the broker to fill during the next phase."""
    return {"collector_id": collector_id, "env": {"JIESHUI_MQTT_SESSION_EXPIRY_S": "0"}}


def sample_rss(collector: CollectorProcess, seconds: float, every_s: float = SAMPLE_S) -> list[float]:
    """VmRSS every `every_s` for `seconds`."""
    samples = []
    end = time.monotonic() + seconds
    while True:
        samples.append(collector.rss_mb())
        if time.monotonic() + every_s > end:
            return samples
        time.sleep(every_s)


def trend(times_s: list[float], rss_mb: list[float]) -> dict[str, float]:
    """Slope (MB/min) over the second half, and the last quarter's mean against the second's."""
    n = len(rss_mb)
    half_t, half_y = times_s[n // 2 :], rss_mb[n // 2 :]
    mt, my = sum(half_t) / len(half_t), sum(half_y) / len(half_y)
    var = sum((t - mt) ** 2 for t in half_t)
    slope = sum((t - mt) * (y - my) for t, y in zip(half_t, half_y, strict=True)) / var if var else 0.0
    q2 = rss_mb[n // 4 : n // 2] or rss_mb[: n // 2]
    q4 = rss_mb[3 * n // 4 :]
    q2_mean, q4_mean = sum(q2) / len(q2), sum(q4) / len(q4)
    return {
        "slope_mb_min": round(slope * 60, 3),
        "q2_mean_mb": round(q2_mean, 2),
        "q4_mean_mb": round(q4_mean, 2),
        "q4_over_q2": round(q4_mean / q2_mean, 4),
    }


def run(budget_s: float = DEFAULT_BUDGET_S, soak_s: float | None = None, soak_rate: float = 1000.0) -> Result:
    """Idle, backlog and soak phases; RSS of the collector process in each."""
    from jieshui.services import InfluxServer, MosquittoServer, free_port

    started = time.monotonic()
    small = budget_s < 45
    backlog = BACKLOG_LINES if not small else 100_000
    settle_s = 4.0 if not small else 2.0
    site = carwash_site(DEVICES, per_community=100)
    names = [t for _, t in topics(site)]
    figures: dict[str, Any] = {"devices": DEVICES, "backlog_lines": backlog, "target_mb": TARGET_MB}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        influxd = InfluxServer(work / "influxd")
        mosquitto = MosquittoServer(work / "mosquitto")
        influxd.start()
        mosquitto.start()
        collectors: list[CollectorProcess] = []
        publishers: list[Publisher] = []
        try:
            # 1. idle
            idle = CollectorProcess(
                site, work / "idle", influxd.url, "idle", mosquitto.url, **transient("idle")
            )
            collectors.append(idle)
            idle.start()
            idle.wait_for("connected to the broker", lambda h: h["mqtt_connected"], 30)
            idle_rss = sample_rss(idle, settle_s)
            figures["idle_rss_mb"] = round(max(idle_rss), 1)
            idle.stop()

            # 2. backlog: a million lines waiting, InfluxDB unreachable, the devices still sending
            t0 = time.monotonic()
            nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            held = CollectorProcess(
                site, work / "backlog", nowhere, "backlog", mosquitto.url, **transient("backlog")
            )
            collectors.append(held)
            prefill(held.buffer, backlog)
            figures["window_ids"] = full_windows(held.buffer, site)
            figures["prefill_s"] = round(time.monotonic() - t0, 1)
            figures["buffer_file_mb"] = round(held.buffer.stat().st_size / 2**20, 1)
            trickle = Publisher(PublishPlan(mosquitto.host, mosquitto.port, names, 200.0, 3600))
            publishers.append(trickle)
            held.start(timeout_s=120)
            held.wait_for("connected to the broker", lambda h: h["mqtt_connected"], 30)
            time.sleep(0.5)
            trickle.go()
            backlog_rss = sample_rss(held, 2 * settle_s)
            health = held.health()  # the /healthz an operator would look at, RSS right after
            backlog_rss.append(held.rss_mb())
            figures["backlog_rss_parts_mb"] = held.rss_parts_mb()
            trickle.stop()
            trickle_rep = trickle.result(60)
            figures["backlog_rss_mb"] = round(max(backlog_rss), 1)
            figures["backlog_hwm_mb"] = round(held.hwm_mb(), 1)
            figures["backlog_buffer_depth"] = health["buffer_depth"]
            figures["backlog_messages_during"] = sum(trickle_rep.sent)
            if not health["last_write_error"]:
                notes.append("BACKLOG PHASE INVALID: the collector reported no write error")
            if health["buffer_depth"] < backlog:
                notes.append(f"BACKLOG PHASE INVALID: only {health['buffer_depth']} lines pending")
            held.stop()

            # 3. soak under a steady load
            # the publisher runs until stopped (its plan's length is only an upper bound)
            load = Publisher(PublishPlan(mosquitto.host, mosquitto.port, names, soak_rate, 24 * 3600))
            publishers.append(load)
            soak = CollectorProcess(
                site, work / "soak", influxd.url, "soak", mosquitto.url, collector_id="soak"
            )
            collectors.append(soak)
            full_windows(soak.buffer, site)
            soak.start()
            soak.wait_for("connected to the broker", lambda h: h["mqtt_connected"], 30)
            time.sleep(0.5)
            if soak_s is None:  # what the budget leaves after ~6 s to stop, drain and count
                soak_s = max(5.0, budget_s - (time.monotonic() - started) - 6)
            every_s = max(SAMPLE_S, soak_s / 240)
            since_ns = time.time_ns()
            cpu0 = cpu_seconds(soak.pid)
            load.go()
            t_soak = time.monotonic()
            times_s, rss = [], []
            parts_first = soak.rss_parts_mb()
            while time.monotonic() - t_soak < soak_s:
                times_s.append(time.monotonic() - t_soak)
                rss.append(soak.rss_mb())
                time.sleep(every_s)
            parts_last = soak.rss_parts_mb()
            load.stop()
            load_rep = load.result(120)
            soak_cpu = (cpu_seconds(soak.pid) - cpu0) / (time.monotonic() - t_soak)
            soak.wait_for("drained its buffer", lambda h: h["buffer_depth"] == 0, 60)
            stored = count_points(influxd.url, "soak", since_ns)
            acked = sum(load_rep.sent) - load_rep.unacked
            figures.update(
                soak_s=round(soak_s, 1),
                soak_rate_msg_s=soak_rate,
                soak_achieved_msg_s=round(sum(load_rep.sent) / load_rep.elapsed_s, 1),
                soak_messages=sum(load_rep.sent),
                soak_points_stored=stored,
                soak_samples=len(rss),
                soak_collector_cpu_cores=round(soak_cpu, 3),
                soak_first_mb=round(rss[0], 1),
                windows_mb=round(rss[0] - figures["idle_rss_mb"], 1),
                soak_max_mb=round(max(rss), 1),
                soak_last_mb=round(rss[-1], 1),
                soak_hwm_mb=round(soak.hwm_mb(), 1),
                soak_rss_parts_first_mb=parts_first,
                soak_rss_parts_last_mb=parts_last,
                **trend(times_s, rss),
                soak_rss_series_mb=[round(x, 1) for x in rss[:: max(1, len(rss) // 60)]],
            )
            if stored < acked:
                notes.append(f"INCOMPLETE SOAK: {acked} messages acknowledged, {stored} points stored")
            soak.stop()
        finally:
            for p in publishers:
                p.stop()
                if p.process.is_alive():
                    p.process.join(5)
                    if p.process.is_alive():
                        p.process.kill()
            for c in collectors:
                c.stop()
            mosquitto.stop()
            influxd.stop()
    grows = figures["slope_mb_min"] >= SLOPE_MB_MIN or abs(figures["q4_over_q2"] - 1) > QUARTER_SHARE
    notes += [
        f"soak: {'GROWS' if grows else 'no growth'} (slope over the second half "
        f"{figures['slope_mb_min']:+.2f} MB/min, limit {SLOPE_MB_MIN:g}; last quarter / second quarter "
        f"{figures['q4_over_q2']:.3f}, limit 1 +- {QUARTER_SHARE:g}) over {figures['soak_s']:.0f} s "
        f"at {soak_rate:g} msg/s",
        f"{DEVICES} wx-cw01 units over MQTT; backlog of {backlog:,} pending lines "
        f"({figures['buffer_file_mb']:.0f} MB buffer file) with InfluxDB on a closed port and 200 msg/s "
        "arriving; RSS = highest VmRSS sample of the phase",
        "collector: `jieshui collect` process, default settings (buffer synchronous=FULL, batches of "
        "5,000, flush interval 1 s)",
        f"{os.cpu_count()} cores shared with other work; load average at the end {os.getloadavg()[0]:.2f}",
    ]
    if small:
        notes.insert(0, f"small budget: backlog of {backlog:,} lines instead of {BACKLOG_LINES:,}")
    figures["soak_grows"] = grows
    ours = figures["backlog_rss_mb"]
    return Result(
        name="memory",
        title="Memory: collector RSS, 1,000 devices and 1,000,000 pending readings (InfluxDB down)",
        baseline_label="the target",
        baseline=TARGET_MB,
        ours_label="collector VmRSS with the backlog",
        ours=ours,
        unit="MB",
        ratio=round(ours / TARGET_MB, 4),
        target=1.0,
        target_op="<=",
        figures=figures,
        notes=notes,
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--soak-minutes", type=float, default=None, help="soak length (default: what the budget leaves)"
        )
        parser.add_argument("--soak-rate", type=float, default=1000.0, help="messages per second in the soak")

    def arguments(args: argparse.Namespace, _: argparse.ArgumentParser) -> dict[str, Any]:
        soak_s = args.soak_minutes * 60 if args.soak_minutes is not None else None
        return {"soak_s": soak_s, "soak_rate": args.soak_rate}

    bench_main(__doc__ or "", DEFAULT_BUDGET_S, run, options, arguments)


if __name__ == "__main__":
    main()
