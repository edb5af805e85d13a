"""The API the corpus sends bad requests to: the real app on the session's influxd (an empty, bootstrapped
database: no request of the corpus gets as far as reading data) and an SQLite database, with a key per
role made as tests/api makes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jieshui.inventory import load_site
from jieshui.services import InfluxServer
from store.influx import InfluxConfig, InfluxStore
from tests.api.conftest import Api, District, make_api

ROOT = Path(__file__).parents[2]
DATABASE = "corpus_api"


@pytest.fixture(scope="session")
def corpus_api(influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """examples/district.yaml served by the real app at tests/api's "now" (2026-01-05, Shanghai)."""
    store = InfluxStore(InfluxConfig(url=influx_server.url, database=DATABASE))
    store.bootstrap()
    district = District(load_site(ROOT / "examples" / "district.yaml"), store, {})
    api = make_api(district, f"sqlite:///{tmp_path_factory.mktemp('corpus-api')}/api.sqlite3")
    yield api
    api.client.close()
    api.ctx.db.close()
    store.execute(f'DROP DATABASE "{DATABASE}"')
    store.close()
