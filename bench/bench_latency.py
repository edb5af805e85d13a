"""Latency: from an MQTT publish to the point being queryable in InfluxDB, at a steady 1,000 msg/s.

Real mosquitto and influxd; the collector runs as operators run it (`jieshui collect`, its own
process, default settings: flush interval 1 s, buffer `synchronous=FULL`, batches of 5,000 lines) on a
synthetic inventory of 100 car-wash units (profile wx-cw01, MQTT, ten communities of ten). A second
process publishes valid wash messages (QoS 1) round-robin over the 100 topics at a steady rate,
paced against the clock (each message has its due time; the publisher's lateness is reported), and
records for the *sampled* devices (the first 10: every tenth message, 100 msg/s) the wall-clock
nanosecond just before each `publish()`.

Visibility is observed, not assumed: the bench polls InfluxDB every 20 ms with one query,
`SELECT last(wash_count) ... GROUP BY device` over the sampled devices (wash_count = the message's
sequence number). One drainer writes the buffer in order, so when a device's last visible sequence is
n, its messages up to n are visible; each becomes visible "at the latest" when the answer that first
showed it arrived. The figure is therefore an upper bound, too high by at most the poll period plus one
query (both reported). The first 20 % of the load (warm-up: connections, first shard) is left out.

Baseline, in the same run against the same influxd: a bare write-then-query probe, `POST /write` of one
car-wash line (the collector's shape) into another database, then the same kind of query repeated
until the point is visible; latency = visible - before POST. Probed while idle (before the load) and
under the load (every 100 ms, concurrently): the loaded figure is the baseline, since the collector's
writes meet the same loaded server; the idle one is in `figures`.
Target (issue 9): our p99 <= flush interval + 2 x bare p99. `ratio` = our p99 / that bound (<= 1).
At the end every published message must be in InfluxDB (counted).

Run: `.venv/bin/python -m bench.bench_latency [--budget-s 45] [--rate 1000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import Result
from bench.common import main as bench_main
from jieshui.inventory import Site

ROOT = Path(__file__).parents[1]
DEFAULT_BUDGET_S = 45
FLUSH_INTERVAL_S = 1.0  # the collector's default (JIESHUI_FLUSH_INTERVAL_S)
POLL_S = 0.02
WARMUP_SHARE = 0.2

_COMMUNITY: dict[str, Any] = {
    "street_town": "新泾镇",
    "residents_committee": "居民委员会",
    "contact": "王丽",
    "phone": "021-62681234",
    "postcode": "200335",
    "address": "长宁区新泾镇哈密路1880弄",
    "households": 1000,
    "population": 2500,
    "application_year": 2025,
    "car_wash_pilot": True,
    "parking_spaces": 500,
}


def device_id(i: int) -> str:
    """The id of the i-th synthetic car-wash unit."""
    return f"cw-{i:04d}"


def carwash_site(devices: int, per_community: int = 100) -> Site:
    """A synthetic inventory of `devices` car-wash units (wx-cw01 over MQTT), `per_community` to a
    community, one community per district (the programme allows few car-wash pilots per district)."""
    districts = []
    for c in range(-(-devices // per_community)):
        ids = range(c * per_community, min(devices, (c + 1) * per_community))
        facility = {
            "id": "car-wash",
            "kind": "car_wash",
            "name": "微水洗车点",
            "devices": [
                {"id": device_id(i), "profile": "wx-cw01", "connection": {"protocol": "mqtt"}} for i in ids
            ],
        }
        community = {"id": f"c{c:03d}", "name": f"小区{c}", **_COMMUNITY, "facilities": [facility]}
        districts.append({"id": f"d{c:03d}", "name": f"区{c}", "communities": [community]})
    return Site.model_validate({"schema_version": 1, "districts": districts})


def topics(site: Site) -> list[tuple[str, str]]:
    """(device id, telemetry topic) of every device, in inventory order."""
    return [
        (device.id, f"jieshui/{district.id}/{community.id}/{device.id}/telemetry")
        for district, community in site.communities()
        for _, device in community.devices()
    ]


# -- the collector as a process ---------------------------------------------------------------------
class CollectorProcess:
    """`jieshui collect` on a site file, with its buffer and log under `work` (as tests/collector)."""

    def __init__(
        self,
        site: Site,
        work: Path,
        influx_url: str,
        database: str,
        mqtt_url: str,
        env: dict[str, str] | None = None,
        collector_id: str = "bench",
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.site_file = work / "site.yaml"
        self.site_file.write_text(
            yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True), encoding="utf-8"
        )
        self.buffer = work / "buffer.sqlite3"
        self.log = work / "collector.log"
        self.args = [
            sys.executable, "-m", "jieshui.cli", "collect", "--site", str(self.site_file),
            "--collector-id", collector_id, "--buffer", str(self.buffer), "--health-port", "0",
            "--mqtt-url", mqtt_url, "--influx-url", influx_url, "--influx-database", database,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_url = ""

    @property
    def pid(self) -> int:
        """The collector's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60) -> None:
        """Start it and wait until it prints where /healthz is."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env=self.env
            )
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout_s
        while not line and time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stdout.readline()
        match = re.search(r"health on (http://\S+)/healthz", line.decode())
        if match is None:
            raise RuntimeError(f"collector did not start: {line!r}; see {self.log}:\n{self.log_tail()}")
        self.health_url = match.group(1)

    def health(self) -> dict[str, Any]:
        """/healthz, whatever its status code."""
        return dict(httpx.get(f"{self.health_url}/healthz", timeout=30).json())

    def wait_for(self, what: str, condition: Any, timeout_s: float) -> dict[str, Any]:
        """Poll /healthz until `condition(health)`; raise naming `what` if it never holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            h = self.health()
            if condition(h):
                return h
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector never {what}: {json.dumps(h)}")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        """Resident set size (VmRSS) of the collector process, in MB (2**20 bytes)."""
        return _status_kb(self.pid, "VmRSS") / 1024

    def rss_parts_mb(self) -> dict[str, float]:
        """VmRSS split into anonymous memory (the heap), file-backed and shared pages, in MB."""
        return {k: round(_status_kb(self.pid, k) / 1024, 1) for k in ("RssAnon", "RssFile", "RssShmem")}

    def hwm_mb(self) -> float:
        """Peak resident set size (VmHWM), in MB."""
        return _status_kb(self.pid, "VmHWM") / 1024

    def log_tail(self, lines: int = 15) -> str:
        """The end of its log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout_s: float = 30) -> int:
        """SIGINT (as Ctrl-C), SIGKILL if it lingers; the exit status."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else 0
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


# -- the publisher process ----------------------------------------------------------------------------
@dataclass
class PublishPlan:
    """What the publisher process sends: `rate` msg/s round-robin over `topics`, for `seconds`."""

    broker_host: str
    broker_port: int
    topics: list[str]
    rate: float
    seconds: float
    sampled: int = 0  # record publish times of the first `sampled` topics' messages
    clients: int = 4


@dataclass
class PublishReport:
    """What the publisher did: counts per topic, sampled publish times, how well it kept pace."""

    sent: list[int]
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (topic index, seq, publish ns)
    started_ns: int = 0
    elapsed_s: float = 0.0
    max_lateness_s: float = 0.0  # how far behind its schedule a message was sent, at worst
    unacked: int = 0


def payload(seq: int, ts_ms: int) -> bytes:
    """A valid wx-cw01 wash message; wash_count = seq, so the stored point names its message."""
    return json.dumps(
        {
            "ts": ts_ms,
            "seq": seq,
            "event": "wash",
            "wash_count": seq,
            "vehicle_class": "sedan",
            "water_l": 38.5,
            "recycled_l": 16.5,
            "fresh_total_l": round(38.5 * seq, 3),
            "recycled_total_l": round(16.5 * seq, 3),
        },
        separators=(",", ":"),
    ).encode()


def publish(plan: PublishPlan, stop: threading.Event | Any | None = None) -> PublishReport:
    """Publish per `plan` (QoS 1), paced against the monotonic clock; wait for every PUBACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    clients = []
    for i in range(plan.clients):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}-{i}")
        client.max_inflight_messages_set(2000)  # the devices' side is not what is measured
        client.max_queued_messages_set(0)
        client.connect(plan.broker_host, plan.broker_port, keepalive=60)
        client.loop_start()
        clients.append(client)
    n = len(plan.topics)
    total = int(plan.rate * plan.seconds)
    rep = PublishReport(sent=[0] * n, started_ns=time.time_ns())
    infos: list[Any] = []  # paho's MessageInfo of what may still await its PUBACK
    t0 = time.monotonic()
    k = 0
    while k < total and not (stop is not None and stop.is_set()):
        due = t0 + k / plan.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = time.monotonic()
        rep.max_lateness_s = max(rep.max_lateness_s, now - due)
        i = k % n
        seq = rep.sent[i] + 1
        sent_ns = time.time_ns()
        info = clients[i % len(clients)].publish(plan.topics[i], payload(seq, sent_ns // 1_000_000), qos=1)
        rep.sent[i] = seq
        if i < plan.sampled:
            rep.samples.append((i, seq, sent_ns))
        if k % 500 == 0:
            infos = [x for x in infos if not x.is_published()]
        infos.append(info)
        k += 1
    rep.elapsed_s = time.monotonic() - t0
    deadline = time.monotonic() + 30
    for info in infos:
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
    rep.unacked = sum(1 for x in infos if not x.is_published())
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return rep


def _publisher_main(plan: PublishPlan, go: Any, stop: Any, conn: Connection) -> None:
    go.wait()
    conn.send(publish(plan, stop))
    conn.close()


class Publisher:
    """`publish(plan)` in a separate (spawned) process: start(), then result()."""

    def __init__(self, plan: PublishPlan) -> None:
        ctx = mp.get_context("spawn")
        self._go = ctx.Event()
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_publisher_main, args=(plan, self._go, self._stop, send), name="publisher", daemon=True
        )
        self.process.start()  # imports paho and connects once `go` is set; we start it early

    def go(self) -> None:
        """Start publishing."""
        self._go.set()

    def stop(self) -> None:
        """Stop before the plan's end."""
        self._stop.set()

    def result(self, timeout_s: float) -> PublishReport:
        """Wait for the report (and the process's end)."""
        if not self._recv.poll(timeout_s):
            self.process.kill()
            raise RuntimeError("the publisher process did not report in time")
        rep: PublishReport = self._recv.recv()
        self.process.join(10)
        return rep


# -- observing InfluxDB -----------------------------------------------------------------------------
class Visibility:
    """Polls `SELECT last(wash_count) ... GROUP BY device` and records when each sequence first shows."""

    def __init__(self, url: str, database: str, devices: list[str], since_ns: int) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)
        regex = "|".join(re.escape(d) for d in devices)
        where = f'time >= {since_ns} AND "device" =~ /^({regex})$/'
        self.query = f'SELECT last("wash_count") FROM "car_wash" WHERE {where} GROUP BY "device"'  # noqa: S608
        self.database = database
        self.index = {d: i for i, d in enumerate(devices)}
        self.last_seq = [0] * len(devices)
        self.seen_ns: dict[tuple[int, int], int] = {}
        self.query_s: list[float] = []

    def poll(self) -> None:
        """One query; sequences newly covered become visible at the answer's arrival."""
        t0 = time.perf_counter()
        r = self._http.get("/query", params={"db": self.database, "q": self.query, "epoch": "ns"})
        arrived = time.time_ns()
        self.query_s.append(time.perf_counter() - t0)
        r.raise_for_status()
        for result in r.json().get("results", []):
            for series in result.get("series", []):
                i = self.index[series["tags"]["device"]]
                last = int(series["values"][0][1])
                for seq in range(self.last_seq[i] + 1, last + 1):
                    self.seen_ns[(i, seq)] = arrived
                self.last_seq[i] = max(self.last_seq[i], last)

    def run(self, stop: threading.Event) -> None:
        """Poll every POLL_S until `stop`."""
        next_at = time.monotonic()
        while not stop.is_set():
            self.poll()
            next_at += POLL_S
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()

    def close(self) -> None:
        """Close the HTTP connection."""
        self._http.close()


class BareProbe:
    """POST one car-wash line to another database, query until visible: influxd's own latency."""

    def __init__(self, url: str, database: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)
        self.database = database
        self.n = 0
        self.latencies_s: list[float] = []
        self._key = (
            "car_wash,collector=bench,community=c000,device=bare,district=d000,kind=car_wash,"
            "profile=wx-cw01@1"
        )
        self.query = 'SELECT last("wash_count") FROM "car_wash" WHERE "device" = \'bare\''

    def bootstrap(self) -> None:
        """Create the database."""
        self._http.post("/query", data={"q": f'CREATE DATABASE "{self.database}"'}).raise_for_status()

    def probe(self) -> float:
        """One write-then-query; the latency in seconds."""
        self.n += 1
        seq = self.n
        sha = f"{seq:064x}"
        t0 = time.time_ns()
        line = (
            f'{self._key} fresh_delta_m3=0.0385,fresh_m3={0.0385 * seq!r},raw_sha256="{sha}",'
            f'recycled_delta_m3=0.0165,recycled_l=16.5,recycled_m3={0.0165 * seq!r},vehicle_class="sedan",'
            f"wash_count={seq}i,wash_delta_count=1,wash_l=38.5 {t0 + seq}"
        )
        self._http.post(
            "/write", params={"db": self.database, "precision": "ns"}, content=line.encode()
        ).raise_for_status()
        while True:
            r = self._http.get("/query", params={"db": self.database, "q": self.query, "epoch": "ns"})
            r.raise_for_status()
            series = r.json()["results"][0].get("series")
            if series and int(series[0]["values"][0][1]) >= seq:
                latency = (time.time_ns() - t0) / 1e9
                self.latencies_s.append(latency)
                return latency

    def run(self, stop: threading.Event, every_s: float) -> None:
        """Probe every `every_s` until `stop`."""
        while not stop.is_set():
            self.probe()
            stop.wait(every_s)

    def close(self) -> None:
        """Close the HTTP connection."""
        self._http.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def count_points(url: str, database: str, since_ns: int) -> int:
    """car_wash points stored since `since_ns`."""
    q = f'SELECT count("wash_count") FROM "car_wash" WHERE time >= {since_ns}'  # noqa: S608
    r = httpx.get(f"{url}/query", params={"db": database, "q": q}, timeout=60)
    r.raise_for_status()
    series = r.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


# -- the benchmark ----------------------------------------------------------------------------------
def run(budget_s: float = DEFAULT_BUDGET_S, rate: float = 1000.0, devices: int = 100) -> Result:
    """Measure publish -> queryable latency under a steady MQTT load, and bare influxd latency."""
    from jieshui.services import InfluxServer, MosquittoServer

    started = time.monotonic()
    # servers, collector and publisher start ~5 s, the tail, counts and stops ~5 s: the rest is load
    load_s = max(5.0, budget_s - 11)
    sampled = max(1, devices // 10)
    site = carwash_site(devices, per_community=10)
    names = topics(site)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        influxd = InfluxServer(work / "influxd")
        mosquitto = MosquittoServer(work / "mosquitto")
        influxd.start()
        mosquitto.start()
        collector = CollectorProcess(site, work / "collector", influxd.url, "bench", mosquitto.url)
        plan = PublishPlan(mosquitto.host, mosquitto.port, [t for _, t in names], rate, load_s, sampled)
        publisher = Publisher(plan)
        try:
            bare = BareProbe(influxd.url, "bare")
            bare.bootstrap()
            for _ in range(5):
                bare.probe()  # warm-up: the database's first shard
            bare.latencies_s.clear()
            idle_until = time.monotonic() + 2.0
            while time.monotonic() < idle_until:
                bare.probe()
                time.sleep(0.02)
            idle = list(bare.latencies_s)
            bare.latencies_s.clear()
            collector.start()
            collector.wait_for("connected to the broker", lambda h: h["mqtt_connected"], 30)
            time.sleep(0.5)  # the subscription (SUBACK) follows the connection
            since_ns = time.time_ns()
            watch = Visibility(influxd.url, "bench", [d for d, _ in names[:sampled]], since_ns)
            stop = threading.Event()
            threads = [
                threading.Thread(target=watch.run, args=(stop,), name="visibility"),
                threading.Thread(target=bare.run, args=(stop, 0.1), name="bare"),
            ]
            for t in threads:
                t.start()
            cpu0, wall0 = cpu_seconds(collector.pid), time.monotonic()
            publisher.go()
            pub = publisher.result(load_s + 60)
            collector_cpu = (cpu_seconds(collector.pid) - cpu0) / (time.monotonic() - wall0)
            # the tail: every sampled message must show, then everything must be stored
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                watch.last_seq[i] < pub.sent[i] for i in range(sampled)
            ):
                time.sleep(0.05)
            stop.set()
            for t in threads:
                t.join()
            collector.wait_for("drained its buffer", lambda h: h["buffer_depth"] == 0, 30)
            stored = count_points(influxd.url, "bench", since_ns)
            watch.close()
            bare.close()
            exit_code = collector.stop()
        finally:
            publisher.stop()
            if publisher.process.is_alive():
                publisher.process.kill()
            collector.stop()
            mosquitto.stop()
            influxd.stop()
    published = sum(pub.sent)
    warm_until = pub.started_ns + int(WARMUP_SHARE * pub.elapsed_s * 1e9)
    latencies, missing = [], 0
    for i, seq, sent_ns in pub.samples:
        if sent_ns < warm_until:
            continue
        seen = watch.seen_ns.get((i, seq))
        if seen is None:
            missing += 1
        else:
            latencies.append((seen - sent_ns) / 1e9)
    ours_p50, ours_p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    fifth = -(-len(latencies) // 5) or 1  # in publish order: does latency drift during the run?
    by_fifth = [latencies[i : i + fifth] for i in range(0, len(latencies), fifth)]
    bare_p50, bare_p99 = percentile(bare.latencies_s, 50) * 1000, percentile(bare.latencies_s, 99) * 1000
    bound_ms = FLUSH_INTERVAL_S * 1000 + 2 * bare_p99
    if stored != published:
        notes.append(f"INCOMPLETE: {published} messages published, {stored} points stored")
    if missing:
        notes.append(f"{missing} sampled messages never became visible within 20 s of the end")
    if pub.max_lateness_s > 0.05:
        notes.append(f"the publisher fell behind its schedule by up to {pub.max_lateness_s:.3f} s")
    notes += [
        f"{devices} wx-cw01 units over MQTT (QoS 1), {rate:g} msg/s for {pub.elapsed_s:.1f} s "
        f"({published} messages; {pub.unacked} without PUBACK) from a separate process",
        f"latency sampled on {sampled} devices: {len(latencies)} messages after a {WARMUP_SHARE:.0%} warm-up",
        f"collector: `jieshui collect` process, flush interval {FLUSH_INTERVAL_S:g} s (default), "
        "buffer synchronous=FULL (default), batches of 5,000",
        f"observer: a query every {POLL_S * 1000:g} ms "
        f"(median {percentile(watch.query_s, 50) * 1000:.1f} ms): "
        "our figures are upper bounds by up to one period plus one query",
        "baseline: bare POST-then-query of one line, probed every 100 ms during the same load",
        f"{os.cpu_count()} cores shared with other work; load average at the end {os.getloadavg()[0]:.2f}",
    ]
    return Result(
        name="latency",
        title="Latency: MQTT publish -> queryable in InfluxDB at a steady 1,000 msg/s (p99)",
        baseline_label="influxd bare write-then-query p99 (same run, same load)",
        baseline=round(bare_p99, 2),
        ours_label="collector publish -> visible p99",
        ours=round(ours_p99, 2),
        unit="ms",
        ratio=round(ours_p99 / bound_ms, 4),
        target=1.0,
        target_op="<=",
        figures={
            "ours_p50_ms": round(ours_p50, 2),
            "ours_p99_ms": round(ours_p99, 2),
            "ours_max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
            "ours_p50_by_fifth_ms": [round(percentile(x, 50) * 1000, 1) for x in by_fifth],
            "ours_p99_by_fifth_ms": [round(percentile(x, 99) * 1000, 1) for x in by_fifth],
            "collector_cpu_cores": round(collector_cpu, 3),
            "bare_loaded_p50_ms": round(bare_p50, 2),
            "bare_loaded_p99_ms": round(bare_p99, 2),
            "bare_loaded_probes": len(bare.latencies_s),
            "bare_idle_p50_ms": round(percentile(idle, 50) * 1000, 2),
            "bare_idle_p99_ms": round(percentile(idle, 99) * 1000, 2),
            "bare_idle_probes": len(idle),
            "bound_ms": round(bound_ms, 2),
            "flush_interval_s": FLUSH_INTERVAL_S,
            "rate_msg_s": rate,
            "achieved_rate_msg_s": round(published / pub.elapsed_s, 1),
            "publisher_max_lateness_s": round(pub.max_lateness_s, 4),
            "devices": devices,
            "messages_published": published,
            "points_stored": stored,
            "samples": len(latencies),
            "samples_missing": missing,
            "observer_poll_ms": POLL_S * 1000,
            "observer_query_p50_ms": round(percentile(watch.query_s, 50) * 1000, 2),
            "observer_query_p99_ms": round(percentile(watch.query_s, 99) * 1000, 2),
            "collector_exit": exit_code,
        },
        notes=notes,
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
        parser.add_argument("--devices", type=int, default=100)

    bench_main(__doc__ or "", DEFAULT_BUDGET_S, run, options)


if __name__ == "__main__":
    main()
