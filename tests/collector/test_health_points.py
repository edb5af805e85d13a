"""What the operations dashboard reads, stored by a running collector (`jieshui collect` as a process,
real influxd, mosquitto and Modbus simulators): `collector_health` with the writes and their latency,
`device_health` per device (a device answering every poll with an exception is failing and silent, the
others are seen and their poll lateness measured), and the inventory facts `device_info` and `claim`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from jieshui.services import InfluxServer, MosquittoServer
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.simulators.conftest import make_site


def test_collector_stores_its_health_each_devices_and_the_inventory_facts(
    tmp_path: Path, influx_server: InfluxServer, mosquitto_server: MosquittoServer
) -> None:
    site = make_site(tmp_path, "tcp", faults={"master-meter": [{"kind": "exception", "code": 6}]})
    env = {"JIESHUI_HEALTH_INTERVAL_S": "0.5", "JIESHUI_DEVICE_HEALTH_INTERVAL_S": "1"}
    collector = CollectorProcess(
        site, tmp_path / "collector", influx_server.url, mosquitto_server.url, "t_health_points", env=env
    )
    collector.start()
    sim = start_live(site, speed=1e-9, broker=None, work_dir=tmp_path / "sim")
    try:
        time.sleep(5)
        collector.wait_drained()
        assert collector.stop() == 0
    finally:
        sim.stop()
        collector.stop()

    with InfluxStore(InfluxConfig(url=influx_server.url, database="t_health_points")) as store:
        (health,) = store.query(
            "SELECT writes, write_latency_ms_mean, write_latency_ms_max, points_written FROM collector_health"
        )
        assert len(health) >= 5  # every 0.5 s
        assert health.values("writes").max() >= 1
        latencies = health.values("write_latency_ms_mean")
        wrote = ~np.isnan(latencies)  # NaN: no write in that interval
        measured = latencies[wrote]
        assert len(measured) >= 1
        assert (measured > 0).all()
        assert (health.values("write_latency_ms_max")[wrote] >= measured).all()
        assert health.values("points_written").max() > 0

        devices = {
            s.tags["device"]: s
            for s in store.query(
                "SELECT last(failing) AS failing, last(failed_polls) AS failed, last(intervals_silent) AS silent, "
                "last(poll_lateness_s) AS lateness, last(last_seen_age_s) AS age FROM device_health GROUP BY device"
            )
        }
        modbus = {
            d.id for _, c in site.communities() for _, d in c.devices() if d.connection.protocol != "mqtt"
        }
        assert modbus <= set(devices)
        busy = devices["master-meter"]
        assert bool(busy.columns["failing"][0]) is True
        assert busy.values("failed")[0] >= 2
        assert np.isnan(busy.values("age")[0])  # never seen: no age (NaN), not a made-up one
        assert busy.values("silent")[0] > 2  # silent since the collector started (0.5 s polls, 5 s)
        for name in modbus - {"master-meter"}:
            seen = devices[name]
            assert bool(seen.columns["failing"][0]) is False, name
            assert seen.values("age")[0] < 5, name
            assert seen.values("silent")[0] < 5, name
            assert seen.values("lateness")[0] >= 0, name

        (info,) = store.query("SELECT count(interval_s) FROM device_info")
        assert info.values("count")[0] == sum(1 for _, c in site.communities() for _ in c.devices())
        (claims,) = store.query("SELECT count(value) FROM claim")
        assert claims.values("count")[0] == 12 * sum(len(c.claims) for _, c in site.communities())
        store.execute('DROP DATABASE "t_health_points"')
