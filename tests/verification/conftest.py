"""Simulated years with known truth in a real influxd: an honest one and one with faults."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from simulators.model import SHANGHAI
from store.influx import InfluxConfig, InfluxStore

ROOT = Path(__file__).parents[2]
YEAR = 2025
STEP_S = 300  # 5-minute readings: a year in seconds, still 105,120 readings per meter


@dataclass
class SimulatedYear:
    """A backfilled year: the site as simulated, the store holding it, and the truth."""

    site: Site
    store: InfluxStore
    truth: dict[str, Any]

    def total(self, device: str, quantity: str) -> float:
        return float(self.truth["devices"][f"xinjing-6/{device}"]["totals"][quantity])


def _at(month: int, day: int) -> str:
    return dt.datetime(YEAR, month, day, tzinfo=SHANGHAI).isoformat()


#: The faulty year: supply totalizer inflated 1.6x from May, master meter stuck 10-20 March,
#: river pump silent 5-12 June (7 of June's 30 days: 77 % valid, below 90 %).
FAULTS: dict[str, list[dict[str, Any]]] = {
    "rw-controller": [{"kind": "tamper", "quantity": "supply_m3", "start": _at(5, 1), "factor": 1.6}],
    "master-meter": [{"kind": "stuck", "quantity": "volume_m3", "start": _at(3, 10), "end": _at(3, 20)}],
    "river-pump-1": [{"kind": "dropout", "start": _at(6, 5), "end": _at(6, 12)}],
}


def _with_faults(site: Site) -> Site:
    raw = site.model_dump()
    for facility in raw["districts"][0]["communities"][0]["facilities"]:
        for device in facility["devices"]:
            device["faults"] = FAULTS.get(device["id"], [])
    return Site.model_validate(raw)


def _year(server: InfluxServer, tmp: Path, database: str, site: Site) -> Iterator[SimulatedYear]:
    store = InfluxStore(InfluxConfig(url=server.url, database=database, timeout_s=120))
    store.bootstrap()
    truth_path = tmp / f"{database}.json"
    backfill(
        site,
        store,
        dt.date(YEAR, 1, 1),
        dt.date(YEAR + 1, 1, 1),
        seed=1,
        step_s=STEP_S,
        truth_path=truth_path,
    )
    yield SimulatedYear(site, store, json.loads(truth_path.read_text(encoding="utf-8")))
    store.execute(f'DROP DATABASE "{database}"')
    store.close()


@pytest.fixture(scope="session")
def honest_year(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimulatedYear]:
    """examples/community.yaml's 2025, as simulated, with no fault."""
    site = load_site(ROOT / "examples" / "community.yaml")
    yield from _year(influx_server, tmp_path_factory.mktemp("honest"), "t_ver_honest", site)


@pytest.fixture(scope="session")
def faulty_year(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimulatedYear]:
    """The same year with a tampered, a stuck and a silent meter (FAULTS)."""
    site = _with_faults(load_site(ROOT / "examples" / "community.yaml"))
    yield from _year(influx_server, tmp_path_factory.mktemp("faulty"), "t_ver_faulty", site)
