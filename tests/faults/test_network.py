"""The network between the collector and its devices or its broker: a Modbus gateway answering garbage
or half a frame, the link to it cut silently, the link to the broker cut. Each poll that fails is
counted against the device and logged once; nothing half-read is stored; the collector recovers by
itself when the link does, and the broker's messages all arrive, once."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import FaultRig, cycles, metric
from tests.faults.proxy import Mode


def _device_errors(rig: FaultRig) -> float:
    return metric(rig.collector.metrics(), "jieshui_device_errors_total")


@pytest.mark.parametrize("mode", ["garbage", "half", "hold"])
def test_modbus_gateway_faults(rig: FaultRig, mode: Mode) -> None:
    """garbage: random bytes for every answer; half: half of each answer, the rest lost; hold: the link
    is cut silently (no answer, no refusal)."""
    for _ in cycles():
        before = _device_errors(rig)
        rig.modbus_proxy.set(mode)
        rig.wait_until(lambda: len(rig.collector.health()["failing_devices"]) == rig.device_count() - 1,  # type: ignore[arg-type]
                       f"every Modbus device fails ({mode})")  # fmt: skip
        assert _device_errors(rig) > before
        assert rig.collector.health()["status"] == "degraded"
        time.sleep(1.0)
        rig.modbus_proxy.set("pass")
        rig.wait_until(lambda: rig.collector.health()["failing_devices"] == [], "every device answers again")
    if mode != "hold":
        assert rig.modbus_proxy.corrupted > 0
    rig.finish()
    log = rig.log()
    assert "no valid answer within 0.5 s" in log
    assert "(logged once; counted while it lasts)" in log
    assert "answering again" in log


def test_broker_link_cut(rig: FaultRig) -> None:
    for cycle in cycles():
        rig.broker_proxy.set("reset")  # the link drops: both ends see their connection go
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is False)
        time.sleep(2.0)  # the car wash goes on publishing to the broker meanwhile
        rig.broker_proxy.set("pass")
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is True, 60)
        assert metric(rig.collector.metrics(), "jieshui_mqtt_disconnects_total") >= cycle + 1
    rig.finish()
    assert "session resumed" in rig.log()


@pytest.mark.parametrize("rig", [{"env": {"JIESHUI_MQTT_KEEPALIVE_S": "2"}}], indirect=True)
def test_broker_link_cut_silently(rig: FaultRig) -> None:
    """No reset reaches either end: the collector notices by its keepalive (about 1.5 x 2 s here)."""
    for cycle in cycles():
        rig.broker_proxy.set("hold")
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is False, 20)
        time.sleep(1.0)
        rig.broker_proxy.set("pass")
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is True, 60)
        assert metric(rig.collector.metrics(), "jieshui_mqtt_disconnects_total") >= cycle + 1
    rig.finish()
    assert "session resumed" in rig.log()
