"""SIGKILL of influxd, of the collector and of mosquitto during ingest, repeated: nothing the collector
accepted (or the broker acknowledged) is lost or stored twice, the collector recovers by itself, and
each crash shows in its metrics and log."""

from __future__ import annotations

import time

from tests.faults.conftest import FaultRig, cycles, metric


def test_influxd_killed(rig: FaultRig) -> None:
    for _ in cycles():
        rig.influxd.kill()  # a crash: the collector's writes fail, its buffer keeps everything
        rig.wait_until(lambda: int(str(rig.collector.health()["buffer_depth"])) > 0, "the buffer fills")
        time.sleep(1.5)
        failing = rig.collector.metrics()
        assert rig.collector.health()["last_write_error"]
        rig.influxd.restart()
        rig.wait_writing()
        assert metric(failing, "jieshui_write_errors_total") > 0
        assert metric(failing, "jieshui_buffer_depth") > 0
    rig.finish()
    assert "InfluxDB write failed" in rig.log()
    assert "InfluxDB writes succeed again" in rig.log()


def test_collector_killed(rig: FaultRig) -> None:
    for cycle in cycles():
        time.sleep(1.0)
        rig.collector.kill()  # unacknowledged messages stay with the broker, the buffer on disk
        time.sleep(1.5)
        rig.collector.start()
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is True)
        assert metric(rig.collector.metrics(), "jieshui_unclean_stops_total") == cycle + 1
        rig.wait_writing()
    rig.finish()
    assert rig.log().count("ended without a clean stop") == len(cycles())
    assert rig.counters()["unclean_stops"] == len(cycles())


def test_mosquitto_killed(rig: FaultRig) -> None:
    for cycle in cycles():
        time.sleep(1.0)
        rig.broker.kill()  # the broker saved every message it acknowledged before it died
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is False)
        time.sleep(1.0)
        rig.broker.restart()
        rig.collector.wait_for(lambda h: h["mqtt_connected"] is True, 60)
        assert metric(rig.collector.metrics(), "jieshui_mqtt_disconnects_total") >= cycle + 1
    rig.finish()
    assert "disconnected" in rig.log()
    assert "session resumed" in rig.log()
