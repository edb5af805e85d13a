"""Bad input through a running collector: each malformed MQTT payload (a real broker, published with
mosquitto_pub) and each Modbus exception lands in `dead_letter` with its precise reason, the collector
keeps running, and /metrics and /healthz say so."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from jieshui.services import InfluxServer, MosquittoServer
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.collector.malformed import mqtt_cases
from tests.simulators.conftest import make_site

TOPIC = "jieshui/changning/xinjing-6/car-wash-1/telemetry"


def _publish(broker: MosquittoServer, topic: str, payload: bytes) -> None:
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-q", "1"]
    args += ["-n"] if payload == b"" else ["-s"]
    subprocess.run(args, input=payload, check=True, timeout=10)


def test_malformed_inputs_land_in_dead_letter_with_their_reason(
    tmp_path: Path, influx_server: InfluxServer, mosquitto_server: MosquittoServer
) -> None:
    # the master meter answers every poll with exception 6 (device busy)
    site = make_site(tmp_path, "tcp", faults={"master-meter": [{"kind": "exception", "code": 6}]})
    collector = CollectorProcess(
        site, tmp_path / "collector", influx_server.url, mosquitto_server.url, "t_dead"
    )
    collector.start()
    sim = start_live(
        site, speed=1e-9, broker=None, work_dir=tmp_path / "sim"
    )  # Modbus only: the car wash is us
    try:
        collector.wait_for(lambda h: h["mqtt_connected"] is True)
        cases = mqtt_cases(time.time_ns() // 1_000_000)
        for _, payload, _, _ in cases:
            _publish(mosquitto_server, TOPIC, payload)
        _publish(mosquitto_server, "jieshui/changning/xinjing-6/nobody/telemetry", b'{"ts": 1}')
        time.sleep(2)
        collector.wait_drained()
        metrics = collector.metrics()
        health = collector.health()
        assert collector.stop() == 0
    finally:
        sim.stop()
        collector.stop()

    with InfluxStore(InfluxConfig(url=influx_server.url, database="t_dead")) as store:
        (car,) = store.query("SELECT reason, message, raw FROM dead_letter WHERE device = 'car-wash-1'")
        stored = list(zip(car.columns["reason"], car.columns["message"], strict=True))
        assert len(stored) == len(cases)
        for (case, _, reason, text), (got_reason, got_message) in zip(cases, stored, strict=True):
            assert got_reason == reason, case
            assert text in got_message, (case, got_message)
        (unknown,) = store.query("SELECT message, topic FROM dead_letter WHERE reason = 'unknown_topic'")
        assert list(unknown.columns["message"]) == [
            "no device publishes on jieshui/changning/xinjing-6/nobody/telemetry"
        ]
        (busy,) = store.query("SELECT message FROM dead_letter WHERE device = 'master-meter'")
        assert len(busy) >= 2
        assert all("exception code 6 (device busy)" in m for m in busy.columns["message"])
        (healthy,) = store.query("SELECT count(volume_m3) FROM water_meter WHERE device = 'rw-makeup-meter'")
        assert healthy.values("count")[0] >= 2  # the other meters behind the same gateway kept reporting
        store.execute('DROP DATABASE "t_dead"')

    assert 'jieshui_dead_letters_total{reason="schema"}' in metrics
    assert 'jieshui_device_errors_total{device="xinjing-6/master-meter",reason="modbus_exception"}' in metrics
    assert health["failing_devices"] == ["xinjing-6/master-meter"]
    assert health["status"] == "degraded"
