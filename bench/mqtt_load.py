"""MQTT load shared by bench_mqtt and bench_scaleout: a fleet of car-wash units, publishers and
subscribers in their own processes, collector processes, and the proof by count in InfluxDB.

The fleet is one district of communities whose car-wash facilities hold wx-cw01 units (MQTT, JSON,
a `seq` sequence number). Message `seq` of a device carries `wash_count = seq` (its cumulative count
of washes), so InfluxDB's `count(distinct(wash_count))` per device counts the distinct sequence
numbers stored: a lost message lowers it, a doubled one raises `count` above it.

Publishers are separate processes (`python -m bench.mqtt_load publish SPEC`) speaking MQTT 3.1.1 on a
plain socket with pre-encoded QoS 1 PUBLISH packets (a window of unacknowledged ones): the broker
accepts a message when it sends the PUBACK, and a publisher is done when every PUBACK came back.
Publishing then costs a few microseconds of CPU per message (the benches record it), so on a small
machine the subscriber side is what is measured, not the publishers. A publisher connects, prints
`ready`, waits for `go` on stdin, publishes, and prints one JSON line: when it sent the first message
and got the last PUBACK, and the CPU time publishing took.

The two baselines run the same way (`python -m bench.mqtt_load bare|naive SPEC`): a paho 2 subscriber
with the collector's session settings (MQTT v5, stable client id, clean_start=False, a session
expiry, receive maximum 1000, QoS 1) that prints `ready` after its SUBACK and, when it has taken the
expected number of messages (or its deadline passed), one JSON line with the time of the last one.

Collectors run as `jieshui collect` processes (`CollectorRun`), on a buffer seeded in steady state
(`seed_buffer`: every unit's de-duplication window full, as after weeks of running). For profiling
runs only, `BENCH_PYSPY_DIR=DIR` records each collector with py-spy (collapsed stacks, `DIR/*.txt`;
py-spy is not a project dependency: `pip install py-spy` in your own venv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).parents[1]
DISTRICT = "benchd"
WARMUP_DEVICE = "cw-warmup"
#: The collector's de-duplication window (collector.pipeline.SEEN_WINDOW, checked when seeding; not
#: imported here, so publisher processes start without the collector's imports): seeded collectors
#: remember seq 1..SEEN_WINDOW of every unit, and the measured messages start after it.
SEEN_WINDOW = 1024
FIRST_SEQ = SEEN_WINDOW + 1


# -- the fleet ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One car-wash unit of the fleet."""

    community: str
    device: str

    @property
    def topic(self) -> str:
        return f"jieshui/{DISTRICT}/{self.community}/{self.device}/telemetry"


def fleet(devices: int, communities: int = 4) -> list[Unit]:
    """`devices` units spread over `communities` communities (device ids unique across the fleet)."""
    return [Unit(f"bench-{i % communities}", f"cw-{i:04d}") for i in range(devices)]


def site_yaml(units: list[Unit]) -> str:
    """An inventory (examples/*.yaml schema) holding the units plus a warm-up unit in the first
    community; `jieshui check` accepts it."""
    by_community: dict[str, list[str]] = {}
    for u in units:
        by_community.setdefault(u.community, []).append(u.device)
    first = next(iter(by_community))
    by_community[first] = [WARMUP_DEVICE, *by_community[first]]
    communities = []
    for i, (cid, devices) in enumerate(by_community.items()):
        communities.append(
            {
                "id": cid,
                "name": f"压测小区{i}",
                "street_town": "压测镇",
                "residents_committee": f"压测{i}居委会",
                "contact": "测试",
                "phone": "021-62681234",
                "postcode": "200335",
                "address": f"压测路{i}号",
                "households": 1000,
                "population": 2500,
                "application_year": 2025,
                "parking_spaces": 300,
                "facilities": [
                    {
                        "id": "car-wash",
                        "kind": "car_wash",
                        "name": "洗车点",
                        "devices": [
                            {"id": d, "profile": "wx-cw01", "connection": {"protocol": "mqtt"}}
                            for d in devices
                        ],
                    }
                ],
            }
        )
    site = {
        "schema_version": 1,
        "districts": [{"id": DISTRICT, "name": "压测区", "communities": communities}],
    }
    return yaml.safe_dump(site, allow_unicode=True, sort_keys=False)


def warmup_topic(units: list[Unit]) -> str:
    return Unit(units[0].community, WARMUP_DEVICE).topic


def payload(seq: int, ts_ms: int) -> bytes:
    """A wx-cw01 wash message (docs/devices.md): `wash_count` = `seq`, totalizers growing with it."""
    return (
        f'{{"ts": {ts_ms}, "seq": {seq}, "event": "wash", "wash_count": {seq}, '
        f'"vehicle_class": "sedan", "water_l": 1.5, "recycled_l": 0.6, '
        f'"fresh_total_l": {seq * 1.5:.1f}, "recycled_total_l": {seq * 0.6:.1f}}}'
    ).encode()


# -- MQTT 3.1.1 on a socket (publishers) ----------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _connect(host: str, port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _utf8(client_id)  # clean, no keepalive
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    ack = _recv_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError(f"CONNACK refused: {ack!r}")
    return sock


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("broker closed the connection")
        buf += chunk
    return buf


def _publish_packet(topic: bytes, packet_id: int, body: bytes) -> bytes:
    rest = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id) + body
    return b"\x32" + _varint(len(rest)) + rest


def publish_packets(sock: socket.socket, packets: list[bytes], window: int = 2000, chunk: int = 200) -> None:
    """Send QoS 1 packets keeping at most `window` unacknowledged; return when all are acknowledged."""
    n, sent, acked, pending = len(packets), 0, 0, b""
    while acked < n:
        if sent < n and sent - acked < window:
            end = min(n, sent + chunk, acked + window)
            sock.sendall(b"".join(packets[sent:end]))
            sent = end
            if sent - acked < window // 2 and sent < n:
                continue
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("broker closed the connection")
        pending += data
        whole = len(pending) // 4 * 4
        for i in range(0, whole, 4):
            if pending[i] != 0x40:
                raise RuntimeError(f"unexpected packet {pending[i : i + 4]!r} (expected PUBACK)")
        acked += whole // 4
        pending = pending[whole:]


def publish_once(host: str, port: int, topic: str, body: bytes) -> None:
    """One QoS 1 message, acknowledged (the warm-up)."""
    sock = _connect(host, port, f"bench-once-{os.getpid()}")
    try:
        publish_packets(sock, [_publish_packet(topic.encode(), 1, body)])
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    finally:
        sock.close()


def _publisher_main(spec: dict[str, Any]) -> None:
    topics = [t.encode() for t in spec["topics"]]
    per_device, first_seq, ts_ms = spec["per_device"], spec["first_seq"], spec["ts_ms"]
    packets = []
    j = 0
    for k in range(per_device):  # round robin over the devices; in order per device
        seq = first_seq + k
        body = payload(seq, ts_ms)
        for topic in topics:
            packets.append(_publish_packet(topic, j % 65535 + 1, body))
            j += 1
    sock = _connect(spec["host"], spec["port"], spec["client_id"])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    first, cpu0 = time.time(), time.process_time()
    publish_packets(sock, packets, spec.get("window", 2000))
    last, cpu = time.time(), time.process_time() - cpu0
    sock.sendall(b"\xe0\x00")
    sock.close()
    out = {"first_publish": first, "last_ack": last, "messages": len(packets), "cpu_s": cpu}
    print(json.dumps(out), flush=True)


class Publishers:
    """`count` publisher processes splitting the units, each publishing `per_device` messages per unit
    with seq `first_seq`, `first_seq + 1`, ..."""

    def __init__(
        self,
        host: str,
        port: int,
        units: list[Unit],
        per_device: int,
        count: int = 2,
        first_seq: int = 1,
        tag: str = "p",
    ) -> None:
        self.messages = per_device * len(units)
        ts_ms = time.time_ns() // 1_000_000
        self.procs: list[subprocess.Popen[str]] = []
        for i in range(count):
            spec = {
                "host": host,
                "port": port,
                "client_id": f"bench-{tag}-{i}",
                "topics": [u.topic for u in units[i::count]],
                "per_device": per_device,
                "first_seq": first_seq,
                "ts_ms": ts_ms,
            }
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.mqtt_load", "publish", json.dumps(spec)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"publisher did not start: {line!r}")

    def go(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()

    def results(self, timeout_s: float = 600) -> dict[str, float]:
        """First publish and last PUBACK over all publishers (epoch seconds), messages acknowledged,
        CPU seconds the publishers spent publishing."""
        outs = []
        for p in self.procs:
            assert p.stdout is not None
            outs.append(json.loads(p.stdout.readline()))
            p.wait(timeout_s)
        return {
            "first_publish": min(o["first_publish"] for o in outs),
            "last_ack": max(o["last_ack"] for o in outs),
            "messages": sum(o["messages"] for o in outs),
            "cpu_s": sum(o["cpu_s"] for o in outs),
        }

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# -- paho subscribers (baselines) -----------------------------------------------------------------
def _paho_client(spec: dict[str, Any], on_message: Any) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions

    from collector.sources.mqtt import TELEMETRY_FILTER

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=spec["client_id"], protocol=mqtt.MQTTv5)

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(spec.get("filter", TELEMETRY_FILTER), options=SubscribeOptions(qos=1))

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        print("ready", flush=True)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = 1000
    client.connect(spec["host"], spec["port"], keepalive=30, clean_start=False, properties=props)
    return client


def _subscriber_main(kind: str, spec: dict[str, Any]) -> None:
    expect, deadline_s = spec["expect"], spec.get("deadline_s", 600.0)
    state = {"n": 0, "last": 0.0, "first": 0.0}
    write = _naive_writer(spec) if kind == "naive" else None

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if write is not None:
            write(message.topic, message.payload)  # synchronous, one HTTP request per message
        state["n"] += 1
        state["last"] = time.time()
        if state["n"] == 1:
            state["first"] = state["last"]
        if state["n"] >= expect:
            client.disconnect()

    client = _paho_client(spec, on_message)
    cpu0 = time.process_time()  # after imports and connecting: what receiving costs
    while client.loop(timeout=0.05) == 0 and state["n"] < expect:
        if state["n"] and time.time() - state["first"] > deadline_s:
            client.disconnect()
            break
    print(
        json.dumps(
            {
                "messages": state["n"],
                "first_message": state["first"],
                "last_message": state["last"],
                "cpu_s": time.process_time() - cpu0,
            }
        ),
        flush=True,
    )


def _naive_writer(spec: dict[str, Any]) -> Any:
    """What one would write first: parse the JSON, build an influxdb-client Point, write it at once.

    influxdb-client's WriteApi posts to /api/v2/write, which influxd 1.6 does not have (404; it came
    with 1.8), so the point goes through influxdb-client's own HTTP client (`ApiClient.call_api`) to
    the v1 `/write` endpoint: same library, same connection pool, one synchronous request per message.
    """
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write.point import Point

    client = InfluxDBClient(url=spec["influx_url"], token="", org="-")
    api = client.api_client
    query = [("db", spec["database"]), ("precision", "ns")]

    def write(topic: str, body: bytes) -> None:
        _, district, community, device, _ = topic.split("/")
        msg = json.loads(body)
        point = (
            Point("car_wash")  # type: ignore[no-untyped-call]
            .tag("district", district)
            .tag("community", community)
            .tag("device", device)
            .tag("kind", "car_wash")
            .field("wash_count", int(msg["wash_count"]))
            .field("wash_l", float(msg["water_l"]))
            .field("recycled_l", float(msg["recycled_l"]))
            .field("vehicle_class", msg["vehicle_class"])
            .field("fresh_m3", msg["fresh_total_l"] / 1000)
            .field("recycled_m3", msg["recycled_total_l"] / 1000)
            .time(msg["ts"] * 1_000_000 + msg["seq"] % 1_000_000)
        )
        api.call_api(  # type: ignore[no-untyped-call]
            "/write",
            "POST",
            query_params=query,
            body=point.to_line_protocol(),
            header_params={"Content-Type": "text/plain; charset=utf-8"},
            auth_settings=[],
            response_type=None,
            _return_http_data_only=True,
        )

    return write


class Subscriber:
    """A baseline subscriber process (`bare` or `naive`), subscribed once constructed."""

    def __init__(self, kind: str, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mqtt_load", kind, json.dumps(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{kind} subscriber did not start: {line!r}")

    def result(self, timeout_s: float) -> dict[str, float]:
        assert self.proc.stdout is not None
        out = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout_s)
        clear_session(self.spec["host"], self.spec["port"], self.spec["client_id"])
        return dict(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def clear_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session (the broker would otherwise keep queueing the next phase's messages
    for it): connect with its client id and clean_start, session expiry 0, and leave."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(host, port, clean_start=True)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def seed_buffer(path: Path, units: list[Unit], messages_before: int) -> None:
    """Give a new collector buffer the device state of a collector that has been running: each unit's
    last totalizers and the ids of its last `messages_before` messages (seq 1..messages_before) in its
    de-duplication window, so the bench measures the steady state (a full window costs more per message
    than an empty one), not a collector's first minutes. Its messages then start at
    seq `messages_before + 1`."""
    from collector.buffer import Buffer
    from collector.pipeline import SEEN_WINDOW as COLLECTOR_WINDOW
    from collector.pipeline import DeviceState, SeenWindow

    if messages_before > COLLECTOR_WINDOW:
        raise ValueError(f"the collector remembers {COLLECTOR_WINDOW} message ids, not {messages_before}")
    if COLLECTOR_WINDOW != SEEN_WINDOW:
        raise RuntimeError(f"collector.pipeline.SEEN_WINDOW is {COLLECTOR_WINDOW}: update bench/mqtt_load.py")

    k = messages_before
    before_ns = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000  # an hour ago
    last = {"wash_count": float(k), "fresh_m3": k * 1.5 / 1000, "recycled_m3": k * 0.6 / 1000}
    seen = [str(i) for i in range(1, k + 1)]
    buffer = Buffer(path)
    try:
        buffer.commit(
            [],
            {
                f"{u.community}/{u.device}": DeviceState(dict(last), before_ns, SeenWindow(seen))
                for u in units
            },
        )
    finally:
        buffer.close()


# -- the collector as a process -------------------------------------------------------------------
_METRIC = re.compile(r"^(\w+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$", re.M)


class CollectorRun:
    """`jieshui collect` as operators run it, on a site file, with its own buffer and health port."""

    def __init__(
        self,
        work: Path,
        site_file: Path,
        collector_id: str,
        mqtt_url: str,
        influx_url: str,
        database: str,
        share_group: str | None = None,
        env: dict[str, str] | None = None,
        seed: list[Unit] | None = None,
    ) -> None:
        """Start it; with `seed`, on a buffer holding those units' steady state (`seed_buffer`)."""
        work.mkdir(parents=True, exist_ok=True)
        self.collector_id = collector_id
        self.client_id = f"jieshui-collector-{collector_id}"
        self.log_path = work / f"collector-{collector_id}.log"
        self.buffer = work / f"{collector_id}.sqlite3"
        args = [
            sys.executable,
            "-m",
            "jieshui.cli",
            "collect",
            "--site",
            str(site_file),
            "--collector-id",
            collector_id,
            "--buffer",
            str(self.buffer),
            "--health-port",
            "0",
            "--mqtt-url",
            mqtt_url,
            "--influx-url",
            influx_url,
            "--influx-database",
            database,
        ]
        if share_group:
            args += ["--share-group", share_group]
        if seed:
            seed_buffer(self.buffer, seed, SEEN_WINDOW)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **(env or {})}
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.search(r"health on (http://\S+)/healthz", line)
        if not match:
            raise RuntimeError(f"collector did not start: {line!r}; see {self.log_path}")
        self.base = match.group(1)
        self.profiler: subprocess.Popen[bytes] | None = None
        if os.environ.get("BENCH_PYSPY_DIR"):  # profiling runs only: py-spy (not a project dependency)
            out = Path(os.environ["BENCH_PYSPY_DIR"]) / f"{collector_id}-{int(time.time())}.txt"
            self.profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(self.proc.pid),
                    "--format",
                    "raw",
                    "--threads",
                    "--rate",
                    "100",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._http = httpx.Client(timeout=10)

    def metrics(self) -> dict[str, float]:
        """/metrics as {name{labels}: value}."""
        text = self._http.get(f"{self.base}/metrics").text
        return {name + (labels or ""): float(v) for name, labels, v in _METRIC.findall(text)}

    def accepted(self, m: dict[str, float] | None = None) -> int:
        m = self.metrics() if m is None else m
        return int(m.get('jieshui_readings_in_total{source="mqtt"}', 0))

    def health(self) -> dict[str, Any]:
        """/healthz (200 or 503)."""
        return dict(self._http.get(f"{self.base}/healthz").json())

    def cpu_s(self) -> float:
        """CPU seconds the collector process has used so far (all its threads, user + system)."""
        return proc_cpu_s(self.proc.pid)

    def wait_connected(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.metrics().get("jieshui_mqtt_connected", 0) != 1:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"collector never connected to the broker; see {self.log_path}")
            time.sleep(0.05)

    def stop(self, host: str, port: int) -> int:
        """SIGINT (as Ctrl-C), then end its broker session so later phases do not queue for it."""
        self._http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.profiler is not None:
            self.profiler.wait(60)
        clear_session(host, port, self.client_id)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuMeter:
    """CPU used between construction and `read()`: by the machine (busy share of all cores) and by
    each given process (seconds)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.machine0 = machine_cpu()
        self.procs0 = {name: proc_cpu_s(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, float]:
        busy, total = machine_cpu()
        out = {"machine_busy_share": (busy - self.machine0[0]) / max(1e-9, total - self.machine0[1])}
        for name, pid in self.pids.items():
            out[f"{name}_cpu_s"] = proc_cpu_s(pid) - self.procs0[name]
        return out


def wait_all_stored(
    collectors: list[CollectorRun], expect: int, timeout_s: float, poll_s: float = 0.5
) -> tuple[float, list[dict[str, float]]]:
    """Poll the collectors' /metrics until together they accepted `expect` MQTT messages and each
    buffer is empty (everything written to InfluxDB); return when the last write was confirmed (the
    latest `last_write_ok_ns` of their /healthz, epoch s) and the metrics.

    Polling is sparse (every `poll_s`) so the bench costs the collectors little CPU; the end time
    comes from the collectors themselves, not from the poll.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        ms = [c.metrics() for c in collectors]
        if sum(c.accepted(m) for c, m in zip(collectors, ms, strict=True)) >= expect and all(
            m.get("jieshui_buffer_depth", 1) == 0 for m in ms
        ):
            return max(int(c.health()["last_write_ok_ns"]) for c in collectors) / 1e9, ms
        if time.monotonic() > deadline:
            got = sum(c.accepted(m) for c, m in zip(collectors, ms, strict=True))
            raise TimeoutError(f"collectors accepted {got} of {expect} messages within {timeout_s:.0f} s")
        for c in collectors:
            if c.proc.poll() is not None:
                raise RuntimeError(f"collector {c.collector_id} exited; see {c.log_path}")
        time.sleep(poll_s)


def problems_in(metrics: dict[str, float]) -> dict[str, float]:
    """Dead letters, duplicates, write errors and refused batches a collector counted (should be none)."""
    bad = (
        "jieshui_dead_letters_total",
        "jieshui_duplicates_total",
        "jieshui_write_errors_total",
        "jieshui_buffer_full_total",
    )
    return {k: v for k, v in metrics.items() if k.startswith(bad) and not k.endswith("_created") and v}


# -- proof by count -------------------------------------------------------------------------------
def stored_counts(influx_url: str, database: str) -> dict[str, tuple[int, int]]:
    """Per device: (points stored in `car_wash`, distinct `wash_count` = distinct seq among them)."""
    out: dict[str, list[int]] = {}
    with httpx.Client(timeout=120) as http:
        for i, q in enumerate(
            (
                'SELECT count("wash_count") FROM "car_wash" GROUP BY "device"',
                'SELECT count(distinct("wash_count")) FROM "car_wash" GROUP BY "device"',
            )
        ):
            r = http.get(f"{influx_url}/query", params={"db": database, "q": q})
            r.raise_for_status()
            for s in r.json()["results"][0].get("series", []):
                out.setdefault(s["tags"]["device"], [0, 0])[i] = int(s["values"][0][1])
    return {d: (c[0], c[1]) for d, c in out.items()}


def verify(
    counts: dict[str, tuple[int, int]],
    units: list[Unit],
    per_device: int,
    extra: dict[str, int] | None = None,
) -> dict[str, int]:
    """Compare what InfluxDB holds with what was published: lost, doubled, and devices wrong."""
    want = {u.device: per_device for u in units} | (extra or {})
    lost = doubled = wrong = 0
    for device, n in want.items():
        count, distinct = counts.get(device, (0, 0))
        lost += n - distinct
        doubled += count - distinct
        wrong += count != n or distinct != n
    unexpected = sum(c for d, (c, _) in counts.items() if d not in want)
    return {
        "stored": sum(c for c, _ in counts.values()),
        "lost": lost,
        "doubled": doubled,
        "devices_wrong": wrong,
        "unexpected": unexpected,
    }


if __name__ == "__main__":
    role, spec_json = sys.argv[1], sys.argv[2]
    if role == "publish":
        _publisher_main(json.loads(spec_json))
    elif role in ("bare", "naive"):
        _subscriber_main(role, json.loads(spec_json))
    else:
        raise SystemExit(f"unknown role {role!r}")


def round_options(max_rounds: int) -> Callable[[argparse.ArgumentParser], None]:
    """The command-line options bench_mqtt and bench_scaleout share."""

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--per-device", type=int, default=None, help="messages per device (default: from the budget)"
        )
        parser.add_argument(
            "--max-rounds", type=int, default=None, help=f"at most this many rounds ({max_rounds})"
        )

    return options
