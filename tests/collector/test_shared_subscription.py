"""Two collectors on one MQTT v5 shared subscription split a fleet's messages: every message the
broker accepted is stored once, and each collector took a share."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from jieshui.services import InfluxServer, MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.simulators.conftest import MORNING, acknowledged, make_site


def test_two_collectors_share_the_messages_without_loss_or_double(
    tmp_path: Path, influx_server: InfluxServer, mosquitto_server: MosquittoServer
) -> None:
    site = make_site(tmp_path, "tcp")
    collectors = []
    for name in ("a", "b"):
        c = CollectorProcess(site, tmp_path / name, influx_server.url, mosquitto_server.url, "t_shared")
        c.args[c.args.index("c1")] = f"shared-{name}"
        c.args += ["--share-group", "fleet", "--only", "xinjing-6"]
        collectors.append(c)
    for c in collectors:
        c.start()
        c.wait_for(lambda h: h["mqtt_connected"] is True)
    sim = start_live(site, speed=3600, seed=12, broker=parse_mqtt_url(mosquitto_server.url),
                     work_dir=tmp_path / "sim", keep_published=True, start_ns=MORNING)  # fmt: skip
    try:
        time.sleep(6)
        sim.stop()
        time.sleep(1.5)
        for c in collectors:
            c.wait_drained()
            assert c.stop() == 0
    finally:
        sim.stop()
        for c in collectors:
            c.stop()
    published = acknowledged(sim)
    shares = [
        dict(sqlite3.connect(c.buffer).execute("SELECT name, value FROM counter").fetchall()).get(
            "accepted_mqtt", 0
        )
        for c in collectors
    ]
    assert sum(shares) == len(published) > 20
    assert min(shares) > 0  # both took part
    with InfluxStore(InfluxConfig(url=influx_server.url, database="t_shared")) as store:
        (wash,) = store.query("SELECT wash_count, wash_delta_count FROM car_wash")
        assert len(wash) == len(published)
        assert set(wash.columns) == {"wash_count", "wash_delta_count"}
        assert all(v != v for v in wash.values("wash_delta_count"))  # NaN: no deltas when shared
        store.execute('DROP DATABASE "t_shared"')
