"""The API against real servers: a real influxd holding a backfilled fortnight of examples/district.yaml
(eight communities, across New Year), and a real SQL database, SQLite and PostgreSQL in turn.

PostgreSQL is the server at JIESHUI_TEST_PG_URL (default: 127.0.0.1:5432, user postgres, which
`make test` makes sure runs); each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Role, create_key
from api.db import Database
from api.deps import ApiContext
from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from simulators.model import SHANGHAI
from store.influx import InfluxConfig, InfluxStore

ROOT = Path(__file__).parents[2]
SITE = ROOT / "examples" / "district.yaml"
START, END = dt.date(2025, 12, 20), dt.date(2026, 1, 6)
STEP_S = 300
#: The API's "now": a Monday morning in the backfilled data (Asia/Shanghai), after New Year.
NOW = dt.datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)
OWN, OTHER = "xinjing-6", "xianxia-xicun"  # the manager's community, and one in the same district
PG_ADMIN_URL = os.environ.get("JIESHUI_TEST_PG_URL", "postgresql://postgres:jieshui@127.0.0.1:5432/postgres")


@dataclass
class District:
    site: Site
    store: InfluxStore
    truth: dict[str, Any]


@pytest.fixture(scope="session")
def district(influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    site = load_site(SITE)
    store = InfluxStore(InfluxConfig(url=influx_server.url, database="api_district", timeout_s=120))
    store.bootstrap()
    truth_path = tmp_path_factory.mktemp("api") / "truth.json"
    backfill(site, store, START, END, seed=3, step_s=STEP_S, truth_path=truth_path)
    yield District(site, store, json.loads(truth_path.read_text(encoding="utf-8")))
    store.execute('DROP DATABASE "api_district"')
    store.close()


def _pg_url(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_admin() -> str:
    """The PostgreSQL server's URL; fails (never skips) when no server answers: `make test` starts one."""
    with psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=5) as conn:
        conn.execute("SELECT 1")
    return PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty SQL database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/api.sqlite3"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"jieshui_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Api:
    """An app on real servers, a client, and a key per role (managers: one for OWN, one for OTHER)."""

    ctx: ApiContext
    client: TestClient
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str | None, lang: str | None = None) -> dict[str, str]:
        h = {"X-API-Key": self.keys[who]} if who else {}
        if lang:
            h["Accept-Language"] = lang
        return h

    def get(self, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.client.get(path, headers={**self.headers(who), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.client.post(path, headers={**self.headers(who), **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.client.delete(path, headers={**self.headers(who), **kw.pop("headers", {})}, **kw)


#: The caches as `jieshui api` runs by default (JIESHUI_API_*_CACHE_S): every test runs the deployed path.
CACHES = {"status_cache_s": 10.0, "auth_cache_s": 10.0, "registry_cache_s": 10.0}
#: Failed authentications per address and minute: the authorization matrix and schemathesis send
#: thousands of bad credentials from the one test client, counted as deployed but never blocked
#: (test_rate_limit.py tests the limit itself).
AUTH_FAILURES = 1_000_000


def make_api(district: District, db_url: str, now: dt.datetime = NOW) -> Api:
    db = Database(db_url)
    ctx = ApiContext(
        site=district.site, db=db, store=district.store, clock=lambda: now.astimezone(dt.UTC), **CACHES,
        auth_failures=AUTH_FAILURES,
    )  # fmt: skip
    api = Api(ctx, TestClient(create_app(ctx), raise_server_exceptions=False))
    with db.session() as s:
        for who, role, communities in [
            ("admin", Role.ADMIN, []),
            ("evaluator", Role.EVALUATOR, []),
            ("manager", Role.MANAGER, [OWN]),
            ("manager_other", Role.MANAGER, [OTHER]),
        ]:
            _, text = create_key(s, role, communities, who, "test", ctx.now())
            api.keys[who] = text
    return api


@pytest.fixture
def api(district: District, db_url: str) -> Iterator[Api]:
    made = make_api(district, db_url)
    yield made
    made.client.close()
    made.ctx.db.close()


@pytest.fixture
def sqlite_api(district: District, tmp_path: Path) -> Iterator[Api]:
    made = make_api(district, f"sqlite:///{tmp_path}/api.sqlite3")
    yield made
    made.client.close()
    made.ctx.db.close()
