"""A real influxd holding what the dashboards look at: a backfilled year and more of
examples/district.yaml (1 January of last year to the end of today, 30-minute steps, with the
inventory's claims and device_info), then a few seconds of a real collector polling and subscribing to
live simulators of one community, with a malformed MQTT message, so that collector_health,
device_health and dead_letter hold points of the last minutes."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.service import Collector, CollectorConfig
from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer, MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.backfill import backfill
from simulators.model import SHANGHAI
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.simulators.conftest import make_site

ROOT = Path(__file__).parents[2]
DATABASE = "grafana_year"
COLLECTOR_ID = "grafana-test"


@dataclass
class Year:
    site: Site
    store: InfluxStore
    now: dt.datetime
    first_day: dt.date
    live_site: Site  # the one community the collector ran, with a second rainwater controller
    live_community: str


def _run_collector(collector: Collector, seconds: float) -> None:
    """Run the collector in its own loop for `seconds`, then stop it (it drains its buffer)."""

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(collector.run(ready))
        await ready.wait()
        await asyncio.sleep(seconds)
        collector.stop()
        await task

    asyncio.run(main())


@pytest.fixture(scope="session")
def year(
    influx_server: InfluxServer, mosquitto_server: MosquittoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Year]:
    site = load_site(ROOT / "examples" / "district.yaml")
    store = InfluxStore(InfluxConfig(url=influx_server.url, database=DATABASE, timeout_s=300))
    store.bootstrap()
    today = dt.datetime.now(SHANGHAI).date()
    first_day = dt.date(today.year - 1, 1, 1)
    backfill(site, store, first_day, today + dt.timedelta(days=1), seed=17, step_s=1800)

    work = tmp_path_factory.mktemp("grafana-live")
    live = make_site(work, "tcp")
    _, community = next(iter(live.communities()))
    broker = parse_mqtt_url(mosquitto_server.url)
    config = CollectorConfig(
        collector_id=COLLECTOR_ID,
        buffer_path=work / "buffer.sqlite3",
        health_port=0,
        health_interval_s=0.5,
        device_health_interval_s=1.0,
        poll_interval_s=1.0,
        flush_interval_s=0.2,
    )
    collector = Collector(live, config, InfluxConfig(url=influx_server.url, database=DATABASE), broker)
    sim = start_live(live, speed=600, seed=17, broker=broker, work_dir=work / "sim")
    runner = threading.Thread(target=_run_collector, args=(collector, 8.0), name="grafana-collector")
    try:
        runner.start()
        time.sleep(3)  # subscribed by then; the malformed message becomes a dead letter
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto_server.port), "-q", "1",
             "-t", f"jieshui/changning/{community.id}/car-wash-1/telemetry", "-m", '{"seq": "not a number"'],
            check=True, timeout=10,
        )  # fmt: skip
        runner.join(timeout=60)
    finally:
        sim.stop()
    assert not runner.is_alive(), "the collector did not stop"
    yield Year(site, store, dt.datetime.now(SHANGHAI), first_day, live, community.id)
    store.execute(f'DROP DATABASE "{DATABASE}"')
    store.close()
