"""Exactly once, against real influxd, mosquitto and simulators: every MQTT message published and every
Modbus poll the collector accepted is in InfluxDB once, and the consumption from the totalizers adds
up, across influxd killed and restarted, the collector killed and restarted, and mosquitto restarted."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from jieshui.services import InfluxServer, MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.simulators.conftest import MORNING, acknowledged, make_site

MODBUS_KINDS = ("rainwater_system", "water_meter", "river_pump")
TOTALIZERS = {
    "rainwater_system": ["rain_mm", "supply_m3", "makeup_m3", "inflow_m3", "overflow_m3", "treated_m3"],
    "water_meter": ["volume_m3"],
    "river_pump": ["volume_m3", "energy_kwh", "runtime_h"],
    "car_wash": ["wash_count", "fresh_m3", "recycled_m3"],
}


def _delta(field: str) -> str:
    base, _, unit = field.rpartition("_")
    return f"{base}_delta_{unit}"


def test_every_reading_exactly_once_across_crashes_and_restarts(tmp_path: Path) -> None:
    influxd = InfluxServer(tmp_path / "influxd")
    broker = MosquittoServer(tmp_path / "mosquitto")
    influxd.start()
    broker.start()
    site = make_site(tmp_path, "tcp")
    collector = CollectorProcess(site, tmp_path / "collector", influxd.url, broker.url, "once")
    collector.start()
    # The broker keeps messages for a session only once it exists: the collector subscribes first.
    collector.wait_for(lambda h: h["mqtt_connected"] is True)
    sim = start_live(site, speed=1800, seed=21, broker=parse_mqtt_url(broker.url), work_dir=tmp_path / "sim",
                     keep_published=True, start_ns=MORNING)  # fmt: skip
    try:
        time.sleep(3)
        influxd.kill()  # InfluxDB crashes mid-stream: the buffer holds everything meanwhile
        time.sleep(3)
        assert collector.health()["buffer_depth"] > 0
        influxd.restart()
        time.sleep(2)
        collector.kill()  # the collector crashes: unacknowledged messages stay with the broker
        time.sleep(2.5)  # Modbus polls missed now are a gap; the totalizers carry the volume
        collector.start()
        time.sleep(3)
        broker.stop()  # the broker restarts, keeping the collector's persistent session
        time.sleep(1)
        broker.restart()
        time.sleep(4)
        sim.stop()
        time.sleep(1.5)
        collector.wait_drained()
        assert collector.stop() == 0
    finally:
        sim.stop()
        collector.stop()
        broker.stop()

    counters = dict(sqlite3.connect(collector.buffer).execute("SELECT name, value FROM counter").fetchall())
    store = InfluxStore(InfluxConfig(url=influxd.url, database="once"))
    try:
        # MQTT: every message the broker accepted from the simulated car-wash unit is stored once.
        published = acknowledged(sim)
        assert len(published) > 20
        (wash,) = store.query("SELECT raw_sha256, wash_count FROM car_wash")
        assert len(wash) == len(published) == counters["accepted_mqtt"]
        assert counters.get("duplicate", 0) >= 0

        # Modbus: every accepted poll is one point.
        stored = 0
        for kind in MODBUS_KINDS:
            for series in store.query(f'SELECT count(raw_sha256) FROM "{kind}" GROUP BY device'):
                stored += int(series.values("count")[0])
        assert stored == counters["accepted_modbus"]

        # Consumption: the deltas add up to the totalizers' growth, for every device and totalizer;
        # a double-counted or lost delta would break the equality.
        for kind, fields in TOTALIZERS.items():
            for field in fields:
                for series in store.query(
                    f'SELECT first("{field}"), last("{field}"), sum("{_delta(field)}") FROM "{kind}" GROUP BY device'
                ):
                    growth = series.values("last")[0] - series.values("first")[0]
                    summed = series.values("sum")[0]
                    assert summed == pytest.approx(growth, abs=1e-6), (kind, field, series.tags)

        # The collector's outage is a visible gap in the polled series, and only that.
        (meter,) = store.query("SELECT volume_m3 FROM water_meter WHERE device = 'master-meter'")
        gaps = (meter.time[1:] - meter.time[:-1]).astype("int64") / 1e9
        assert gaps.max() >= 2.0
        assert (gaps > 1.0).sum() <= 2  # the kill, and at most one slot skipped at a restart
    finally:
        store.close()
        influxd.stop()
