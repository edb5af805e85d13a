"""Sites for simulator tests: the example community on free ports, every Modbus profile present."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml

from jieshui.inventory import Site
from jieshui.services import free_port
from simulators.model import SHANGHAI
from simulators.runner import LiveSimulation

EXAMPLES = Path(__file__).parents[2] / "examples"
#: 09:00 local on a summer day: the car-wash point is open, washes arrive within seconds when accelerated.
MORNING = int(dt.datetime(2025, 7, 15, 9, 0, tzinfo=SHANGHAI).timestamp()) * 10**9


def acknowledged(sim: LiveSimulation) -> list[bytes]:
    """Every payload the broker acknowledged from the simulated MQTT devices: what was published."""
    return [m for d in sim.mqtt.devices for m in d.acknowledged] if sim.mqtt else []


def make_site(
    tmp_path: Path, transport: Literal["tcp", "rtu"], faults: dict[str, list[dict[str, Any]]] | None = None
) -> Site:
    """examples/community.yaml plus a second-vendor rainwater controller (lq-rhc10), with every Modbus
    device on one TCP gateway on a free port, or on one serial line under tmp_path."""
    raw = yaml.safe_load((EXAMPLES / "community.yaml").read_text(encoding="utf-8"))
    community = raw["districts"][0]["communities"][0]
    rain = next(f for f in community["facilities"] if f["kind"] == "rainwater_harvesting")
    second = copy.deepcopy(rain)
    second["id"] = "rainwater-b"
    second["devices"] = [{"id": "rw-controller-b", "profile": "lq-rhc10", "connection": {"protocol": "mqtt"}}]
    community["facilities"].append(second)
    port = free_port()
    line = str(tmp_path / "rs485")
    unit = 1
    for facility in community["facilities"]:
        for device in facility["devices"]:
            device["faults"] = (faults or {}).get(device["id"], [])
            if device["profile"] == "wx-cw01":
                continue
            conn: dict[str, Any] = (
                {"protocol": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit_id": unit}
                if transport == "tcp"
                else {"protocol": "modbus_rtu", "serial_port": line, "baudrate": 19200, "unit_id": unit}
            )
            device["connection"] = conn
            unit += 1
    return Site.model_validate(raw)
