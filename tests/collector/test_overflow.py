"""A full buffer is loud, never silent: with InfluxDB down and a tiny buffer, Modbus polls are refused
and counted, MQTT messages stay with the broker, and once InfluxDB is back every message the broker
accepted arrives exactly once."""

from __future__ import annotations

import re
import time
from pathlib import Path

from jieshui.services import InfluxServer, MosquittoServer, free_port
from jieshui.settings import parse_mqtt_url
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.simulators.conftest import MORNING, acknowledged, make_site


def test_full_buffer_refuses_loudly_and_the_broker_keeps_the_messages(
    tmp_path: Path, mosquitto_server: MosquittoServer
) -> None:
    port = free_port()
    influxd = InfluxServer(tmp_path / "influxd", port=port)  # not started yet: InfluxDB is down
    site = make_site(tmp_path, "tcp")
    collector = CollectorProcess(site, tmp_path / "collector", influxd.url, mosquitto_server.url, "t_full",
                                 env={"JIESHUI_BUFFER_MAX_LINES": "40"})  # fmt: skip
    collector.start()
    collector.wait_for(lambda h: h["mqtt_connected"] is True)
    sim = start_live(site, speed=1800, seed=8, broker=parse_mqtt_url(mosquitto_server.url),
                     work_dir=tmp_path / "sim", keep_published=True, start_ns=MORNING)  # fmt: skip
    try:
        time.sleep(6)
        full = collector.metrics()
        assert collector.health()["buffer_depth"] <= 40
        influxd.start()
        time.sleep(3)
        sim.stop()
        collector.wait_for(lambda h: h["buffer_depth"] == 0 and h["mqtt_connected"] is True, 60)
        time.sleep(2)
        collector.wait_drained(60)
        assert collector.stop() == 0
    finally:
        sim.stop()
        collector.stop()
    refused = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'jieshui_buffer_full_total{source="(\w+)"} (\S+)', full)
    }
    assert refused["modbus"] > 0
    assert refused["mqtt"] > 0
    published = acknowledged(sim)
    with InfluxStore(InfluxConfig(url=influxd.url, database="t_full")) as store:
        (wash,) = store.query("SELECT wash_count FROM car_wash")
        assert len(wash) == len(published)
    influxd.stop()
    log = (tmp_path / "collector" / "collector-1.log").read_text()
    assert "exceed its bound of 40" in log
    assert "MQTT messages left unacknowledged for the broker to keep" in log
