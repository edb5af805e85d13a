"""`jieshui simulate`: run a site's devices live, and `jieshui simulate backfill`: write history.

The live run starts one Modbus server per endpoint of the inventory (a socat pseudo-terminal pair for
each RS-485 line whose port does not exist yet, so the collector can open the inventory's path), one
MQTT client per MQTT device, and keeps them going on the simulated clock until stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jieshui.faults import Fault
from jieshui.inventory import ModbusRtu, Site
from jieshui.services import SerialPtyPair
from jieshui.settings import MqttEndpoint
from simulators.live import LiveWorld, SimClock
from simulators.modbus_face import DeviceFace, start_modbus_faces
from simulators.modbus_server import ModbusServerThread
from simulators.mqtt_face import MqttFace


def with_faults(site: Site, extra: list[tuple[str, str, Fault]]) -> Site:
    """A copy of the site with faults from the command line added to the named devices."""
    if not extra:
        return site
    raw = site.model_dump()
    found = set()
    for district in raw["districts"]:
        for community in district["communities"]:
            for facility in community["facilities"]:
                for device in facility["devices"]:
                    for c, d, fault in extra:
                        if (c, d) == (community["id"], device["id"]):
                            device["faults"].append(fault.model_dump())
                            found.add((c, d))
    missing = [f"{c}/{d}" for c, d, _ in extra if (c, d) not in found]
    if missing:
        raise KeyError(f"--fault names devices not in the inventory: {', '.join(missing)}")
    return Site.model_validate(raw)


@dataclass
class LiveSimulation:
    """Everything a live run started, to report on and to stop."""

    world: LiveWorld
    modbus: list[ModbusServerThread] = field(default_factory=list)
    faces: list[DeviceFace] = field(default_factory=list)
    mqtt: MqttFace | None = None
    serial: list[SerialPtyPair] = field(default_factory=list)

    def stop(self) -> None:
        """Stop publishers, servers and serial lines."""
        if self.mqtt is not None:
            self.mqtt.stop()
        for server in self.modbus:
            server.stop()
        for pair in self.serial:
            pair.stop()


def start_live(
    site: Site,
    *,
    speed: float = 1.0,
    seed: int = 1,
    broker: MqttEndpoint | None,
    work_dir: Path,
    start_ns: int | None = None,
    keep_published: bool = False,
    mqtt_ca_file: str | None = None,
) -> LiveSimulation:
    """Start every device face of the site; the caller stops them with `.stop()`.

    `mqtt_ca_file`: the CA an `mqtts://` broker's certificate is verified against (else the system's).
    """
    clock = SimClock(start_ns=start_ns, speed=speed)
    sim = LiveSimulation(LiveWorld(site, clock, seed=seed))
    try:
        serial_ports: dict[str, str] = {}
        for _, community in site.communities():
            for _, device in community.devices():
                conn = device.connection
                if isinstance(conn, ModbusRtu) and conn.serial_port not in serial_ports:
                    if os.path.exists(conn.serial_port) and not os.path.islink(conn.serial_port):
                        serial_ports[conn.serial_port] = conn.serial_port  # a real line: serve on it
                        continue
                    Path(conn.serial_port).parent.mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(conn.serial_port)  # a stale link from an earlier run
                    pair = SerialPtyPair(work_dir, label=device.id, client_port=conn.serial_port)
                    pair.start()
                    sim.serial.append(pair)
                    serial_ports[conn.serial_port] = pair.server_port
        sim.modbus, sim.faces = start_modbus_faces(site, sim.world, seed, serial_ports)
        if broker is not None and any(True for _ in _mqtt_devices(site)):
            sim.mqtt = MqttFace(
                site, sim.world, broker, seed=seed, keep_published=keep_published, ca_file=mqtt_ca_file
            ).start()
    except BaseException:
        sim.stop()
        raise
    return sim


def _mqtt_devices(site: Site) -> Iterator[str]:
    for _, community in site.communities():
        for _, device in community.devices():
            if device.connection.protocol == "mqtt":
                yield device.id


def parse_step(text: str) -> int:
    """`1m`, `15m`, `1h`, `30s` -> seconds (must divide a day)."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        seconds = int(float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError) as exc:
        raise ValueError(f"step {text!r} is not like 30s, 1m, 15m or 1h") from exc
    if seconds <= 0 or 86400 % seconds:
        raise ValueError(f"step {text!r} must divide a day")
    return seconds


def parse_date(text: str) -> dt.date:
    """An ISO date (YYYY-MM-DD)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date like 2025-01-01") from exc
