"""The MQTT profiles the corpus and the fuzz tests exercise, and a valid payload for each.

Every profile of devices/profiles with an MQTT schema (today: the car wash, wx-cw01), plus two
profiles made here for the payload features no shipped profile uses yet: device time in epoch
seconds, a boolean and a free text quantity, an optional sequence number (`test-tank-s`); ISO 8601
times on a local clock and no sequence number (`test-meter-iso`). A new shipped MQTT profile joins
the corpus by itself.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import yaml

from collector.pipeline import DeviceRef
from devices.profile import Profile, load_profiles
from tests.collector.malformed import GOOD as CAR_WASH_GOOD

NOW_MS = 1_795_000_000_000
NOW_NS = NOW_MS * 1_000_000

_TANK_S = """
name: test-tank-s
version: 1
kind: rainwater_system
vendor: Test
model: S
description: {zh: 测试水箱, en: Test tank}
quantities:
  - {name: level_pct, unit: "%", min: 0, max: 100, description: {zh: 水位, en: Level}}
  - {name: supply_m3, unit: m3, totalizer: true, min: 0, description: {zh: 供水, en: Supply}}
  - {name: pump_running, unit: "", type: bool, description: {zh: 泵, en: Pump}}
  - {name: fault_code, unit: "", type: int, min: 0, max: 65535, description: {zh: 故障, en: Fault}}
  - {name: mode, unit: "", type: string, description: {zh: 模式, en: Mode}}
mqtt:
  timestamp_key: t
  timestamp_format: epoch_s
  sequence_key: n
  fields:
    - {key: n, type: integer, required: false}
    - {key: level, quantity: level_pct, type: number}
    - {key: supply_l, quantity: supply_m3, type: number, scale: 0.001}
    - {key: pump, quantity: pump_running, type: boolean}
    - {key: fault, quantity: fault_code, type: integer, required: false}
    - {key: mode, quantity: mode, type: string, required: false}
"""

_METER_ISO = """
name: test-meter-iso
version: 1
kind: water_meter
vendor: Test
model: ISO
description: {zh: 测试水表, en: Test meter}
clock: local
quantities:
  - {name: volume_m3, unit: m3, totalizer: true, min: 0, description: {zh: 累计, en: Volume}}
  - {name: flow_m3h, unit: m3/h, min: 0, max: 250, description: {zh: 流量, en: Flow}}
mqtt:
  timestamp_key: time
  timestamp_format: iso8601
  sequence_key: null
  fields:
    - {key: volume, quantity: volume_m3, type: number}
    - {key: flow, quantity: flow_m3h, type: number, required: false}
"""

TEST_PROFILES = [Profile.model_validate(yaml.safe_load(text)) for text in (_TANK_S, _METER_ISO)]


def mqtt_profiles() -> list[Profile]:
    """Every shipped MQTT profile (latest and older versions alike), then the two made here."""
    shipped = {p.ref: p for p in load_profiles().values() if p.mqtt is not None}
    return [shipped[ref] for ref in sorted(shipped)] + TEST_PROFILES


def device(profile: Profile) -> DeviceRef:
    """The device a corpus payload comes from."""
    return DeviceRef("changning", "xinjing-6", f"dev-{profile.name}", profile, "c1")


def good_payload(profile: Profile, now_ms: int = NOW_MS) -> dict[str, Any]:
    """A payload the profile accepts, every key present, values inside their ranges."""
    assert profile.mqtt is not None
    if profile.name == "wx-cw01":
        return {**CAR_WASH_GOOD, "ts": now_ms}  # the same base as tests/collector/malformed.py
    schema = profile.mqtt
    body: dict[str, Any] = {}
    if schema.timestamp_key is not None:
        if schema.timestamp_format == "epoch_ms":
            body[schema.timestamp_key] = now_ms
        elif schema.timestamp_format == "epoch_s":
            body[schema.timestamp_key] = now_ms / 1000
        else:
            body[schema.timestamp_key] = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).isoformat()
    for f in schema.fields:
        if f.values:
            body[f.key] = f.values[0]
        elif f.type == "boolean":
            body[f.key] = True
        elif f.type == "string":
            body[f.key] = "auto"
        elif f.type == "integer":
            body[f.key] = 3
        else:
            body[f.key] = 12.5
    return body


def encode(body: dict[str, Any]) -> bytes:
    """A payload as a device sends it."""
    return json.dumps(body).encode()
