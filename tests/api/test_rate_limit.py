"""The limit on failed authentications (api/ratelimit.py, docs/api.md "Failed authentications").

The sliding window is tested alone on a clock the test drives; the API's use of it in process, on a real
SQLite database and a real influxd (for /healthz), with several client addresses (Starlette's test
client lets each client say its address) and the limit's clock driven by the test: bad keys, bad
tokens and bad POST /auth/token secrets count against the caller's address; a blocked address gets 429
`rate_limited` with Retry-After on every route but /healthz, a valid key included; other addresses are
never slowed; wrong secrets for one key id from many addresses get 429, the right one still passes; no
credential, an expired token or a revoked key count nothing; the auth cache lets no failure through
uncounted; the 429 is what the OpenAPI description says.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.auth import Role, create_key
from api.db import Database
from api.deps import ApiContext
from api.errors import ERRORS
from api.ratelimit import AuthFailures, SlidingWindow, retry_after_header
from jieshui.inventory import load_site
from jieshui.services import InfluxServer
from store.influx import InfluxConfig, InfluxStore
from tests.api.conftest import OWN, SITE

LIMIT, WINDOW_S = 3, 60.0


def garbage() -> str:
    """A key of the right form that is not ours: a new key id each time, as a scan would send."""
    return f"jsk_{secrets.token_hex(6)}_" + "x" * 43


GARBAGE_TOKEN = "jst_" + "x" * 43


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- the sliding window alone --------------------------------------------------------------------


def test_a_key_is_blocked_at_its_limit_until_its_oldest_event_leaves_the_window() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60.0, clock)
    for i in range(3):
        assert window.retry_after("a") is None
        assert window.add("a") == i + 1
        clock.t += 10
    # events at 1000, 1010, 1020; now 1030: blocked until 1060
    assert window.retry_after("a") == pytest.approx(30.0)
    assert window.retry_after("b") is None  # another key is not affected
    clock.t = 1059.9
    assert window.retry_after("a") == pytest.approx(0.1)
    clock.t = 1060.0
    assert window.retry_after("a") is None  # the first event left: one more is allowed...
    assert window.add("a") == 3
    assert window.retry_after("a") == pytest.approx(10.0)  # ...then blocked until 1070
    clock.t += 200
    assert window.add("a") == 1  # everything older than the window is forgotten


def test_a_limit_of_zero_counts_nothing() -> None:
    window = SlidingWindow(0, 60.0, Clock())
    for _ in range(100):
        assert window.add("a") == 0
    assert window.retry_after("a") is None
    assert len(window) == 0


def test_the_window_keeps_at_most_max_keys() -> None:
    clock = Clock()
    window = SlidingWindow(2, 60.0, clock, max_keys=3)
    window.add("old")
    clock.t += 61  # "old" has left the window: it goes first
    for key in ("a", "b", "c"):
        window.add(key)
    assert len(window) == 3
    window.add("a")  # a: two events, blocked
    window.add("d")  # nothing has left the window: b, which saw no event the longest, goes
    assert len(window) == 3
    assert window.retry_after("a") is not None
    assert window.add("b") == 1  # forgotten: b starts afresh (and c goes)
    assert window.retry_after("a") is not None


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == 1
    assert retry_after_header(1.0) == 1
    assert retry_after_header(1.2) == 2
    assert retry_after_header(59.5) == 60


def test_auth_failures_by_address_and_by_key_id() -> None:
    clock = Clock()
    failures = AuthFailures(2, 60.0, clock)
    assert failures.failed("10.0.0.1", "aaaaaaaaaaaa") is None
    assert failures.blocked("10.0.0.1") is None
    assert failures.failed("10.0.0.2", "aaaaaaaaaaaa") is None  # the key id reaches its limit
    assert failures.blocked("10.0.0.2") is None  # neither address did
    # the key id is over its limit: a third failure for it is answered 429, from any address
    assert failures.failed("10.0.0.3", "aaaaaaaaaaaa") == 60
    assert failures.failed("10.0.0.1", None) is None
    assert failures.blocked("10.0.0.1") == 60  # its second failure
    clock.t += 30
    assert failures.blocked("10.0.0.1") == 30
    assert failures.blocked("10.0.0.4") is None


def test_a_limit_of_zero_blocks_nothing() -> None:
    failures = AuthFailures(0, 60.0, Clock())
    for _ in range(50):
        assert failures.failed("10.0.0.1", "aaaaaaaaaaaa") is None
    assert failures.blocked("10.0.0.1") is None


# --- through the API -----------------------------------------------------------------------------


class Limited:
    """An app with LIMIT failures per WINDOW_S, its clocks, keys per role and a client per address."""

    def __init__(self, store: InfluxStore, db_url: str) -> None:
        self.now = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
        self.clock = Clock()
        self.ctx = ApiContext(
            load_site(SITE), Database(db_url), store, clock=lambda: self.now,
            status_cache_s=10, auth_cache_s=10, registry_cache_s=10, auth_failures=LIMIT, auth_window_s=WINDOW_S,
        )  # fmt: skip
        self.ctx.failures = AuthFailures(LIMIT, WINDOW_S, self.clock)
        self.app = create_app(self.ctx)
        self.keys: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}
        with self.ctx.db.session() as s:
            for who, role, communities in [("admin", Role.ADMIN, []), ("manager", Role.MANAGER, [OWN])]:
                row, text = create_key(s, role, communities, who, "test", self.now)
                self.keys[who], self.key_ids[who] = text, row.id
        self._clients: dict[str, TestClient] = {}

    def client(self, address: str) -> TestClient:
        if address not in self._clients:
            self._clients[address] = TestClient(
                self.app, client=(address, 40000), raise_server_exceptions=False
            )
        return self._clients[address]

    def get(self, address: str, path: str = "/me", key: str | None = None, **headers: str) -> httpx.Response:
        response: httpx.Response = self.client(address).get(
            path, headers={**({"X-API-Key": key} if key else {}), **headers}
        )
        return response

    def token(self, address: str, secret: str) -> httpx.Response:
        response: httpx.Response = self.client(address).post(
            "/auth/token", data={"grant_type": "client_credentials", "client_secret": secret}
        )
        return response

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self.ctx.db.close()


@pytest.fixture(scope="module")
def store(influx_server: InfluxServer) -> Iterator[InfluxStore]:
    with InfluxStore(InfluxConfig(url=influx_server.url, database="rate_limit")) as s:
        yield s


@pytest.fixture
def api(store: InfluxStore, tmp_path: Path) -> Iterator[Limited]:
    made = Limited(store, f"sqlite:///{tmp_path}/api.sqlite3")
    yield made
    made.close()


def _is_rate_limited(r: httpx.Response, lang: str = "zh-CN") -> int:
    """The Retry-After of a well-formed 429 (asserting its form)."""
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["lang"] == lang
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S
    assert f"{LIMIT}" in error["message"]
    assert f"{WINDOW_S:g}" in error["message"]
    assert f"{retry_after}" in error["message"]
    return retry_after


def test_bad_keys_block_their_address_and_only_it(api: Limited) -> None:
    attacker, user = "203.0.113.7", "198.51.100.20"
    for _ in range(LIMIT):
        r = api.get(attacker, key=garbage())
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthenticated"
    assert api.get(attacker, key=garbage()).status_code == 429
    # a valid key from the blocked address is refused too, on every route (POST /auth/token included)
    assert _is_rate_limited(api.get(attacker, key=api.keys["admin"])) == WINDOW_S
    assert api.get(attacker, f"/communities/{OWN}", key=api.keys["manager"]).status_code == 429
    assert api.token(attacker, api.keys["admin"]).status_code == 429
    # ... but /healthz answers
    assert api.get(attacker, "/healthz").status_code == 200
    # another address is not slowed
    me = api.get(user, key=api.keys["manager"])
    assert me.status_code == 200
    assert me.json()["role"] == "manager"
    assert api.get(user, key=garbage()).status_code == 401


def test_the_message_is_in_the_callers_language(api: Limited) -> None:
    for _ in range(LIMIT):
        api.get("203.0.113.7", key=garbage())
    zh = api.get("203.0.113.7", key=garbage())
    _is_rate_limited(zh)
    assert zh.json()["error"]["message"] == "认证失败次数过多（60 秒内 3 次），请 60 秒后再试"
    en = api.get("203.0.113.7", key=garbage(), **{"Accept-Language": "en"})
    _is_rate_limited(en, "en")
    assert (
        en.json()["error"]["message"] == "too many failed authentications (3 within 60 s); try again in 60 s"
    )
    assert ERRORS["rate_limited"][0] == 429


def test_the_block_slides_with_the_window(api: Limited) -> None:
    address = "203.0.113.7"
    for _ in range(LIMIT):
        api.get(address, key=garbage())
        api.clock.t += 10  # failures at 0, 10, 20 s
    assert _is_rate_limited(api.get(address, key=api.keys["admin"])) == 30  # now 30 s: free at 60 s
    api.clock.t += 29.5
    assert _is_rate_limited(api.get(address, key=api.keys["admin"])) == 1
    api.clock.t += 0.5  # the first failure left the window: the address may try again
    assert api.get(address, key=api.keys["admin"]).status_code == 200
    assert api.get(address, key=garbage()).status_code == 401  # and fail again: blocked once more
    assert _is_rate_limited(api.get(address, key=api.keys["admin"])) == 10


def test_bad_bearer_tokens_and_bad_token_requests_count(api: Limited) -> None:
    address = "203.0.113.8"
    r = api.get(address, Authorization=f"Bearer {GARBAGE_TOKEN}")
    assert r.status_code == 401
    assert api.get(address, Authorization="Bearer not-even-a-key").status_code == 401
    bad = api.token(address, garbage())
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthenticated"
    assert api.token(address, api.keys["admin"]).status_code == 429
    # a good token request from elsewhere, and its token from there
    token = api.token("198.51.100.20", api.keys["admin"])
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert api.get("198.51.100.20", **bearer).status_code == 200
    assert api.get(address, **bearer).status_code == 429


def test_no_credential_an_expired_token_and_a_revoked_key_count_nothing(api: Limited) -> None:
    address = "203.0.113.9"
    token = api.token(address, api.keys["manager"]).json()["access_token"]
    for _ in range(LIMIT * 3):
        assert api.get(address).status_code == 401  # no key: nobody is guessing
        assert api.token(address, "").status_code == 401  # no secret either
    api.now += dt.timedelta(hours=2)
    for _ in range(LIMIT * 3):
        expired = api.get(address, Authorization=f"Bearer {token}")
        assert expired.json()["error"]["code"] == "token_expired"
    revoke = api.client("198.51.100.20").delete(
        f"/keys/{api.key_ids['manager']}", headers={"X-API-Key": api.keys["admin"]}
    )
    assert revoke.status_code == 204
    for _ in range(LIMIT * 3):
        assert api.get(address, key=api.keys["manager"]).json()["error"]["code"] == "key_revoked"
    assert api.get(address, key=api.keys["admin"]).status_code == 200


def test_wrong_secrets_for_one_key_id_from_many_addresses(api: Limited) -> None:
    """An id is public: wrong secrets for it from anywhere reach its limit and are refused, while its
    holder, with the right secret, is never locked out by them."""
    key_id = api.key_ids["manager"]
    wrong = f"jsk_{key_id}_" + "y" * 43
    for i in range(LIMIT):
        assert api.get(f"203.0.113.{10 + i}", key=wrong).status_code == 401  # one failure per address
    _is_rate_limited(api.get("203.0.113.99", key=wrong))
    _is_rate_limited(api.token("203.0.113.98", wrong))
    # the holder, from their own address or from one that failed once, is served
    assert api.get("198.51.100.20", key=api.keys["manager"]).status_code == 200
    assert api.get("203.0.113.10", key=api.keys["manager"]).status_code == 200
    assert api.token("198.51.100.21", api.keys["manager"]).status_code == 200
    # another key id is unaffected
    other_wrong = f"jsk_{api.key_ids['admin']}_" + "y" * 43
    assert api.get("203.0.113.97", key=other_wrong).status_code == 401


def test_a_cached_principal_does_not_get_past_a_block(api: Limited) -> None:
    address = "203.0.113.20"
    assert api.get(address, key=api.keys["admin"]).status_code == 200  # now in the auth cache
    for _ in range(LIMIT):
        assert api.get(address, key=garbage()).status_code == 401
    assert api.get(address, key=api.keys["admin"]).status_code == 429


def test_failures_are_not_cached_away(api: Limited) -> None:
    """The same bad key again and again is looked up and counted every time."""
    address = "203.0.113.21"
    for _ in range(LIMIT):
        assert api.get(address, key=garbage()).status_code == 401
    assert api.ctx.failures.blocked(address) == WINDOW_S


def test_the_429_is_the_documented_one(api: Limited) -> None:
    """schemathesis checks a 429 against the app's own OpenAPI: status, content type, body, Retry-After."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    for path, method in [("/me", "GET"), ("/auth/token", "POST"), (f"/communities/{OWN}/status", "GET")]:
        operation = schema[path.replace(OWN, "{community_id}")][method]
        assert "429" in operation.definition.raw["responses"]
    for _ in range(LIMIT):
        api.get("testclient", key=garbage())  # schemathesis calls from the test client's address
    case = schema["/me"]["GET"].Case(headers={"X-API-Key": api.keys["admin"]})
    response = case.call()
    assert response.status_code == 429
    case.validate_response(
        response,
        checks=[
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )


def test_the_settings_set_the_limit(
    monkeypatch: pytest.MonkeyPatch, store: InfluxStore, tmp_path: Path
) -> None:
    monkeypatch.setenv("JIESHUI_API_AUTH_FAILURES", "7")
    monkeypatch.setenv("JIESHUI_API_AUTH_WINDOW_S", "120")
    ctx = ApiContext(load_site(SITE), Database(f"sqlite:///{tmp_path}/s.sqlite3"), store)
    assert (ctx.failures.limit, ctx.failures.window_s) == (7, 120.0)
    ctx.db.close()
