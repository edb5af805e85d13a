"""The fault rig: real influxd, mosquitto and simulators, a real collector process, and a proxy on each
of the collector's links, so every fault of docs/reliability.md can be made on demand.

    simulators (Modbus TCP gateway, MQTT car wash) --------------------> mosquitto
         ^ modbus proxy                                  broker proxy ^
         +------------------------ collector ------------------------+
                                       | influx proxy
                                       v
                                    influxd

The simulators publish to the broker directly, so what the broker acknowledged to them is the ground
truth for MQTT; the collector's buffer counts every Modbus poll it accepted, in the same transaction as
the lines. After the faults, `RunTruth.check` compares InfluxDB with both: nothing lost, nothing twice.

`JIESHUI_FAULT_CYCLES` sets how many times each fault is repeated: 1 in `make test`, 10 in
`make faults`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from jieshui.inventory import Site
from jieshui.services import InfluxServer, MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.runner import LiveSimulation, start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.faults.proxy import TcpProxy
from tests.simulators.conftest import MORNING, acknowledged, make_site

CYCLES = int(os.environ.get("JIESHUI_FAULT_CYCLES", "1"))
DATABASE = "faults"
ADMIN, ADMIN_PASSWORD = "admin", "fault-rig-admin"
COLLECTOR_USER, COLLECTOR_PASSWORD = "collector", "fault-rig-collector"
#: measurement -> totalizer fields whose deltas must add up to their growth
TOTALIZERS = {
    "rainwater_system": ["rain_mm", "supply_m3", "makeup_m3", "inflow_m3", "overflow_m3", "treated_m3"],
    "water_meter": ["volume_m3"],
    "river_pump": ["volume_m3", "energy_kwh", "runtime_h"],
    "car_wash": ["wash_count", "fresh_m3", "recycled_m3"],
}
MODBUS_MEASUREMENTS = ("rainwater_system", "water_meter", "river_pump")
#: a point of a reading: (measurement, device, time in ns)
Key = tuple[str, str, int]


def _delta(field: str) -> str:
    base, _, unit = field.rpartition("_")
    return f"{base}_delta_{unit}"


def cycles() -> range:
    """The cycles of one fault test."""
    return range(CYCLES)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in Prometheus text that carry all of `labels` (0 when none)."""
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
        if all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


@dataclass
class RunTruth:
    """What InfluxDB holds of the readings, as records keyed by (measurement, device, time), possibly
    gathered over several snapshots (a dropped database takes what it held with it)."""

    points: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def gather(self, store: InfluxStore) -> None:
        """Add every reading point InfluxDB holds now."""
        for measurement in TOTALIZERS:
            for series in store.query(f'SELECT * FROM "{measurement}" GROUP BY device'):
                device = series.tags["device"]
                times = series.time.astype("int64")
                for i, t in enumerate(times):
                    record = {name: col[i] for name, col in series.columns.items()}
                    key = (measurement, device, int(t))
                    if key in self.points and self.points[key] != _comparable(record):
                        raise AssertionError(f"{key} was stored twice with different values")
                    self.points[key] = _comparable(record)

    def check(self, published: list[bytes], counters: dict[str, int]) -> None:
        """Every MQTT message the broker acknowledged is stored once; every Modbus poll the collector
        accepted is one point; every totalizer's deltas add up to its growth."""
        washes = [p for (m, _, _), p in self.points.items() if m == "car_wash"]
        stored = Counter(str(p["raw_sha256"]) for p in washes)
        sent = Counter(hashlib.sha256(body).hexdigest() for body in published)
        lost = sent - stored
        doubled = {h: n for h, n in stored.items() if n > sent.get(h, 0)}
        assert not lost, f"{sum(lost.values())} acknowledged MQTT messages are not in InfluxDB"
        assert not doubled, f"MQTT messages stored more often than published: {doubled}"
        assert len(published) >= 5, "too little MQTT traffic for the check to mean anything"
        assert counters.get("accepted_mqtt", 0) == len(published)
        modbus = sum(1 for (m, _, _) in self.points if m in MODBUS_MEASUREMENTS)
        assert modbus == counters.get("accepted_modbus", 0), "Modbus points != polls the collector accepted"
        assert modbus > 0
        for measurement, fields in TOTALIZERS.items():
            by_device: dict[str, list[tuple[int, dict[str, Any]]]] = {}
            for (m, device, t), p in self.points.items():
                if m == measurement:
                    by_device.setdefault(device, []).append((t, p))
            for device, rows in by_device.items():
                rows.sort(key=lambda r: r[0])
                for name in fields:
                    values = [(float(p[name]), p.get(_delta(name))) for _, p in rows if name in p]
                    if len(values) < 2:
                        continue
                    growth = values[-1][0] - values[0][0]
                    summed = sum(float(d) for _, d in values[1:] if d is not None)
                    assert summed == pytest.approx(growth, abs=1e-6), (measurement, device, name)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and v != v:  # NaN: the field is absent in this point
            continue
        out[k] = v
    return out


class FaultRig:
    """Servers, proxies, simulators and a collector process for one fault test."""

    def __init__(self, tmp_path: Path, *, influx_auth: bool = False, buffer_dir: Path | None = None,
                 env: dict[str, str] | None = None, seed: int = 5) -> None:  # fmt: skip
        self.tmp = tmp_path
        self.influxd = InfluxServer(tmp_path / "influxd", auth=influx_auth)
        # MosquittoServer saves after every change, so a SIGKILL of the broker loses nothing it
        # acknowledged (docs/reliability.md)
        self.broker = MosquittoServer(tmp_path / "mosquitto")
        self.influxd.start()
        self.broker.start()
        self.influx_auth = influx_auth
        collector_env: dict[str, str] = {}
        if influx_auth:
            # with auth on and no user yet, influxd accepts exactly this statement without credentials
            httpx.post(f"{self.influxd.url}/query", data={"q": f"CREATE USER {ADMIN} WITH PASSWORD "
                       f"'{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"}).raise_for_status()  # fmt: skip
            self.influx_query(
                f"CREATE USER {COLLECTOR_USER} WITH PASSWORD '{COLLECTOR_PASSWORD}' WITH ALL PRIVILEGES"
            )
            collector_env = {
                "JIESHUI_INFLUX_USERNAME": COLLECTOR_USER,
                "JIESHUI_INFLUX_PASSWORD": COLLECTOR_PASSWORD,
            }
        self.site = make_site(tmp_path, "tcp")
        gateway = _gateway_port(self.site)
        self.modbus_proxy = TcpProxy("127.0.0.1", gateway, seed=seed).start()
        self.broker_proxy = TcpProxy("127.0.0.1", self.broker.port).start()
        self.influx_proxy = TcpProxy("127.0.0.1", self.influxd.port).start()
        self.collector = CollectorProcess(
            _with_gateway(self.site, self.modbus_proxy.port),
            tmp_path / "collector",
            f"http://127.0.0.1:{self.influx_proxy.port}",
            f"mqtt://127.0.0.1:{self.broker_proxy.port}",
            DATABASE,
            env={
                "JIESHUI_MODBUS_TIMEOUT_S": "0.5",
                "JIESHUI_INFLUX_TIMEOUT_S": "2",
                "JIESHUI_HEALTH_INTERVAL_S": "1",
                **collector_env,
                **(env or {}),
            },
            buffer=(buffer_dir / "buffer.sqlite3") if buffer_dir else None,
        )
        self.seed = seed
        self.sim: LiveSimulation | None = None
        self.published: list[bytes] = []
        self.truth = RunTruth()

    def start(self) -> FaultRig:
        """Start the collector, let it subscribe, then start the simulators."""
        self.collector.start()
        self.collector.wait_for(lambda h: h["mqtt_connected"] is True)
        self.sim = start_live(self.site, speed=1800, seed=self.seed, broker=parse_mqtt_url(self.broker.url),
                              work_dir=self.tmp / "sim", keep_published=True, start_ns=MORNING)  # fmt: skip
        time.sleep(2)  # some traffic before the first fault
        return self

    def store(self) -> InfluxStore:
        """A store on the rig's influxd, directly (not through the proxy)."""
        return InfluxStore(InfluxConfig(url=self.influxd.url, database=DATABASE, **self.influx_credentials()))

    def influx_credentials(self) -> dict[str, Any]:
        """The admin's credentials when auth is on."""
        return {"username": ADMIN, "password": SecretStr(ADMIN_PASSWORD)} if self.influx_auth else {}

    def influx_query(self, statement: str) -> None:
        """Run an InfluxQL statement directly on influxd, as its administrator."""
        auth = (ADMIN, ADMIN_PASSWORD) if self.influx_auth else None
        response = httpx.post(f"{self.influxd.url}/query", data={"q": statement}, auth=auth)
        response.raise_for_status()
        assert "error" not in response.text, response.text

    def device_count(self) -> int:
        """Devices in the rig's site."""
        return sum(1 for _, community in self.site.communities() for _ in community.devices())

    def counters(self) -> dict[str, int]:
        """The collector's persisted counters, read beside it."""
        with sqlite3.connect(f"file:{self.collector.buffer}?mode=ro", uri=True) as db:
            return {name: int(value) for name, value in db.execute("SELECT name, value FROM counter")}

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        """Poll `condition` until true; fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(
            f"{what}: not within {timeout_s:.0f} s; collector health {self.collector.health()}"
        )

    def wait_writing(self) -> None:
        """Until the collector has written to InfluxDB after this call."""
        since = time.time_ns()
        self.wait_until(
            lambda: int(str(self.collector.health()["last_write_ok_ns"])) > since, "writes succeed"
        )

    def finish(self) -> None:
        """Stop the simulators, let the collector store everything, stop it, and check the truth."""
        assert self.sim is not None
        self.sim.stop()
        self.published = acknowledged(self.sim)
        for proxy in (self.modbus_proxy, self.broker_proxy, self.influx_proxy):
            proxy.set("pass")
        self.wait_until(
            lambda: self.counters().get("accepted_mqtt", 0) >= len(self.published), "MQTT caught up"
        )
        self.collector.wait_drained(60)
        assert self.collector.stop() == 0
        with self.store() as store:
            self.truth.gather(store)
        self.truth.check(self.published, self.counters())

    def log(self) -> str:
        """Every log of the collector's runs so far."""
        return "\n".join(p.read_text() for p in sorted(self.collector.work.glob("collector-*.log")))

    def close(self) -> None:
        """Stop everything (after a failure too)."""
        if self.sim is not None:
            self.sim.stop()
        self.collector.stop()
        for proxy in (self.modbus_proxy, self.broker_proxy, self.influx_proxy):
            proxy.stop()
        self.broker.stop()
        self.influxd.stop()


def _gateway_port(site: Site) -> int:
    for _, community in site.communities():
        for _, device in community.devices():
            port = getattr(device.connection, "port", None)
            if port is not None:
                return int(port)
    raise AssertionError("the fault site has no Modbus TCP device")


def _with_gateway(site: Site, port: int) -> Site:
    """The site as the collector sees it: every Modbus TCP device behind the proxy's port."""
    raw = site.model_dump(mode="json")
    for district in raw["districts"]:
        for community in district["communities"]:
            for facility in community["facilities"]:
                for device in facility["devices"]:
                    if device["connection"].get("protocol") == "modbus_tcp":
                        device["connection"]["port"] = port
    return Site.model_validate(yaml.safe_load(yaml.safe_dump(raw)))


def _running(tmp_path: Path, **options: Any) -> Iterator[FaultRig]:
    r = FaultRig(tmp_path, **options)
    try:
        yield r.start()
    finally:
        r.close()


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FaultRig]:
    """A started rig, stopped after the test; `@pytest.mark.parametrize("rig", [{...}], indirect=True)`
    passes FaultRig's options."""
    yield from _running(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def small_disk_rig(tmp_path: Path, small_disk: Path) -> Iterator[FaultRig]:
    """A started rig whose collector keeps its buffer on `small_disk`."""
    yield from _running(tmp_path, buffer_dir=small_disk)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (the buffer keeps an 8 MiB reserve): a disk a test can fill in an instant."""
    if os.geteuid() != 0:
        raise AssertionError("the disk-full fault mounts a tmpfs and needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
