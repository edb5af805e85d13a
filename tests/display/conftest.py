"""The community display page against real servers: a real influxd holding a backfilled fortnight of one
community of examples/district.yaml (xinjing-6: rainwater, river water, car washes, a tank), late in
the growing season so that the river pump runs, and a real SQLite database. The API's "now" is pinned
into the data, a few days into September, so this month's and this year's figures differ.

Only xinjing-6 is backfilled (the rest of the district is in the registry, without readings): the page
needs one community's figures, and a fortnight of one community takes a second to write.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from simulators.model import SHANGHAI
from store.influx import InfluxConfig, InfluxStore
from tests.api.conftest import OWN, SITE, Api, District, make_api

START, END = dt.date(2025, 8, 25), dt.date(2025, 9, 11)
#: The API's "now": a Wednesday morning (Asia/Shanghai) in the backfilled data, after dry days on which
#: the river pump ran (in August and in September).
NOW = dt.datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
DATABASE = "display_community"


def only(site: Site, community_id: str) -> Site:
    """The site with one community alone (what is backfilled)."""
    districts = [
        d.model_copy(update={"communities": [c for c in d.communities if c.id == community_id]})
        for d in site.districts
        if any(c.id == community_id for c in d.communities)
    ]
    return site.model_copy(update={"districts": districts})


@pytest.fixture(scope="session")
def display_district(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[District]:
    site = load_site(SITE)
    store = InfluxStore(InfluxConfig(url=influx_server.url, database=DATABASE, timeout_s=120))
    store.bootstrap()
    truth_path = tmp_path_factory.mktemp("display") / "truth.json"
    backfill(only(site, OWN), store, START, END, seed=5, step_s=300, truth_path=truth_path)
    yield District(site, store, json.loads(truth_path.read_text(encoding="utf-8")))
    store.execute(f'DROP DATABASE "{DATABASE}"')
    store.close()


@pytest.fixture
def display_api(display_district: District, tmp_path: Path) -> Iterator[Api]:
    """The app on the real servers, in process; keys for admin, evaluator, a manager of OWN and one of
    another community."""
    made = make_api(display_district, f"sqlite:///{tmp_path}/api.sqlite3", now=NOW)
    yield made
    made.client.close()
    made.ctx.db.close()
