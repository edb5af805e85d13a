"""The API's caches (docs/api.md, "Caching"): a community's status, the principal of a key or token and
the registry are reused for a few seconds, and what the API itself changes shows at once (an
acknowledged alert, a revoked key, an imported form). The rest of tests/api runs with the caches on, as
deployed; here their timing is driven by a hand-moved clock."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.cache import TtlCache
from tests.api.conftest import NOW, OWN, Api, District, make_api


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- TtlCache ---------------------------------------------------------------------------------------------
def test_entries_live_their_ttl_and_invalidate() -> None:
    clock = Clock()
    cache: TtlCache[int] = TtlCache(10, clock=clock)
    calls = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("a", compute) == 1
    clock.t += 9.9
    assert cache.get("a", compute) == 1  # still fresh
    assert cache.peek("a") == 1
    clock.t += 0.2
    assert cache.peek("a") is None
    assert cache.get("a", compute) == 2  # expired: computed again
    cache.invalidate("a")
    assert cache.get("a", compute) == 3
    cache.put("b", 7)
    assert cache.peek("b") == 7
    cache.clear()
    assert cache.peek("b") is None
    assert (cache.hits, cache.misses) == (3, 3)


def test_ttl_zero_keeps_nothing() -> None:
    cache: TtlCache[int] = TtlCache(0)
    n = iter(range(100))
    assert [cache.get("k", lambda: next(n)) for _ in range(3)] == [0, 1, 2]
    cache.put("k", 5)
    assert cache.peek("k") is None


def test_a_burst_on_a_cold_entry_computes_once() -> None:
    cache: TtlCache[str] = TtlCache(10)
    started = threading.Event()
    computed = []

    def slow() -> str:
        computed.append(1)
        started.wait(2)
        return "status"

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, "c", slow) for _ in range(8)]
        started.set()
        assert [f.result() for f in futures] == ["status"] * 8
    assert len(computed) == 1


# -- through the app ----------------------------------------------------------------------------------------
def _with_clock(api: Api) -> tuple[Clock, list[dt.datetime]]:
    """Give the app's caches a hand-moved clock, and the app a movable "now"."""
    clock = Clock()
    now = [NOW.astimezone(dt.UTC)]
    api.ctx.clock = lambda: now[0]
    api.ctx.status_cache = TtlCache(api.ctx.status_cache_s, clock=clock)
    api.ctx.auth_cache = TtlCache(api.ctx.auth_cache_s, clock=clock)
    api.ctx.registry_cache = TtlCache(api.ctx.registry_cache_s, clock=clock)
    return clock, now


@pytest.fixture
def cached_api(district: District, tmp_path: Path) -> Api:
    api = make_api(district, f"sqlite:///{tmp_path}/api.sqlite3")
    assert api.ctx.status_cache_s == 10  # the deployed default (JIESHUI_API_STATUS_CACHE_S)
    return api


def test_a_status_is_reused_for_its_ttl_then_computed_again(cached_api: Api) -> None:
    clock, now = _with_clock(cached_api)
    first = cached_api.get(f"/communities/{OWN}/status", who="manager")
    assert first.status_code == 200
    now[0] += dt.timedelta(minutes=1)
    clock.t += 5
    again = cached_api.get(f"/communities/{OWN}/status", who="manager")
    assert again.content == first.content  # the same status, evaluated at the same `at`
    clock.t += 6
    fresh = cached_api.get(f"/communities/{OWN}/status", who="manager").json()
    assert dt.datetime.fromisoformat(fresh["at"]) == now[0]
    # the alerts endpoint always evaluates anew, and refreshes the cached status with it
    now[0] += dt.timedelta(minutes=1)
    cached_api.get(f"/communities/{OWN}/alerts", who="manager")
    assert (
        dt.datetime.fromisoformat(cached_api.get(f"/communities/{OWN}/status", who="manager").json()["at"])
        == now[0]
    )


def test_a_cached_token_still_expires_on_time(cached_api: Api) -> None:
    _, now = _with_clock(cached_api)
    token = cached_api.client.post(
        "/auth/token", data={"grant_type": "password", "password": cached_api.keys["evaluator"]}
    ).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}", "Accept-Language": "en"}
    assert cached_api.client.get("/me", headers=bearer).status_code == 200  # now cached
    now[0] += dt.timedelta(seconds=token["expires_in"] + 1)
    r = cached_api.client.get("/me", headers=bearer)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_expired"


def test_a_key_revoked_here_stops_at_once(cached_api: Api) -> None:
    _with_clock(cached_api)
    created = cached_api.post("/keys", json={"role": "manager", "communities": [OWN]}).json()
    headers = {"X-API-Key": created["key"]}
    assert cached_api.client.get("/me", headers=headers).status_code == 200  # cached
    assert cached_api.delete(f"/keys/{created['id']}").status_code == 204
    assert cached_api.client.get("/me", headers=headers).status_code == 401


def test_a_key_revoked_elsewhere_stops_within_the_ttl(cached_api: Api) -> None:
    """Revoked by another process (the CLI, another API replica): this one notices when its entry
    expires, and not before; docs/api.md says so."""
    from api.auth import revoke_key

    clock, now = _with_clock(cached_api)
    created = cached_api.post("/keys", json={"role": "manager", "communities": [OWN]}).json()
    headers = {"X-API-Key": created["key"]}
    assert cached_api.client.get("/me", headers=headers).status_code == 200
    with cached_api.ctx.db.session() as s:  # as `jieshui keys revoke` does, behind the app's back
        revoke_key(s, created["id"], now[0])
    assert cached_api.client.get("/me", headers=headers).status_code == 200  # within the TTL
    clock.t += cached_api.ctx.auth_cache_s + 0.1
    assert cached_api.client.get("/me", headers=headers).status_code == 401
