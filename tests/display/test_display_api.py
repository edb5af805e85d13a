"""The display routes in process (api/routes/display.py), on the real servers of conftest.py, and the
page's arithmetic alone (api/display.py): the link is shown once and only its hash is kept; an unknown
link and a page turned off are the same 404; the public routes read no credential and count no failed
authentication, and an address blocked for failed authentications cannot tell a valid link from an
invalid one; the community's name is escaped; a store that does not answer is a 503 that names no
address; the Content-Security-Policy admits exactly the page's inline style and script; the link is
masked in logs; the figures follow the documented formulas.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from api.auth import Role
from api.db import AuditEntry, DisplaySetting
from api.display import (
    STANDARD_LPCD,
    UNCLASSIFIED_QUOTA_L,
    WASH_QUOTA_L,
    WashTotals,
    numbers,
    per_capita_lpcd,
    wash_saving_l,
)
from api.ratelimit import AuthFailures
from api.routes.display import token_sha256
from api.schemas import CommunityStatus, ReuseTotals, TankStatus
from jieshui.inventory import Claim, Measure
from jieshui.logs import redact
from simulators.physics import QUOTA_L
from store.influx import InfluxConfig, InfluxStore
from tests.api.conftest import OTHER, OWN, Api, District, make_api
from tests.display.conftest import NOW

GARBAGE_KEY = "jsk_000000000000_" + "x" * 43


def enable(api: Api, community: str = OWN) -> str:
    """Turn the page on; its path (`/display/jsd_...`)."""
    r = api.client.put(
        f"/communities/{community}/display", json={"enabled": True}, headers=api.headers("admin")
    )
    assert r.status_code == 200, r.text
    return str(r.json()["path"])


def test_the_link_is_shown_once_and_only_its_hash_is_kept(display_api: Api) -> None:
    path = enable(display_api)
    token = path.rsplit("/", 1)[1]
    assert re.fullmatch(r"jsd_[A-Za-z0-9_-]{32}", token)  # 24 random bytes
    for who in ("admin", "evaluator", "manager"):
        r = display_api.get(f"/communities/{OWN}/display", who=who)
        assert r.status_code == 200
        body = r.json()
        assert (body["enabled"], body["path"], body["link"]) == (True, None, None)
        assert token not in r.text
    again = display_api.client.put(
        f"/communities/{OWN}/display", json={"enabled": True}, headers=display_api.headers("admin")
    )
    assert again.json()["link"] is None  # on already: the same link, not shown again
    with display_api.ctx.db.session() as s:
        row = s.get(DisplaySetting, OWN)
        assert row is not None
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr([getattr(row, c.key) for c in DisplaySetting.__table__.columns])
        audit = [(a.action, a.detail) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a, _ in audit if a.startswith("display.")] == ["display.enable", "display.enable"]
    assert token not in repr(audit)
    assert display_api.client.get(path).status_code == 200


def test_an_unknown_link_and_a_page_turned_off_are_the_same_404(display_api: Api) -> None:
    path = enable(display_api)
    off = display_api.client.put(
        f"/communities/{OWN}/display", json={"enabled": False}, headers=display_api.headers("admin")
    )
    assert off.status_code == 200
    for lang in ("zh-CN", "en"):
        answers = [
            display_api.client.get(p, headers={"Accept-Language": lang})
            for p in (path, path + "/data", "/display/jsd_" + "A" * 32, "/display/x", "/display/x/data")
        ]
        assert {r.status_code for r in answers} == {404}
        assert len({r.text for r in answers}) == 1, [r.text for r in answers]
        assert answers[0].json()["error"]["code"] == "display_not_found"
        for r in answers:
            assert r.headers["x-robots-tag"] == "noindex, nofollow"
            assert r.headers["cache-control"] == "no-store"
            assert "jsd_" not in r.text


def test_the_public_routes_read_no_credential_and_a_blocked_address_learns_nothing(display_api: Api) -> None:
    path = enable(display_api)
    display_api.ctx.failures = AuthFailures(3, 60.0)
    # a key sent along is not looked at: never refused, never counted
    for _ in range(5):
        for headers in ({"X-API-Key": GARBAGE_KEY}, {"Authorization": "Bearer jst_" + "x" * 43}):
            assert display_api.client.get(path, headers=headers).status_code == 200
            assert display_api.client.get(path + "/data", headers=headers).status_code == 200
    # ... nor are wrong links: a kiosk whose link was replaced does not lock its address out
    for _ in range(5):
        assert display_api.client.get("/display/jsd_" + "B" * 32).status_code == 404
    assert display_api.get("/me", who="admin").status_code == 200
    # an address blocked for failed authentications elsewhere gets the same 429 for any link
    for _ in range(3):
        assert display_api.client.get("/me", headers={"X-API-Key": GARBAGE_KEY}).status_code == 401
    valid, invalid = display_api.client.get(path), display_api.client.get("/display/jsd_" + "C" * 32)
    assert valid.status_code == invalid.status_code == 429
    assert valid.json() == invalid.json()
    assert valid.json()["error"]["code"] == "rate_limited"


def test_the_community_name_is_escaped(display_district: District, tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>新泾&六村\'"'
    site = display_district.site.model_copy(
        update={
            "districts": [
                d.model_copy(
                    update={
                        "communities": [
                            c.model_copy(update={"name": hostile, "name_en": None}) if c.id == OWN else c
                            for c in d.communities
                        ]
                    }
                )
                for d in display_district.site.districts
            ]
        }
    )
    api = make_api(District(site, display_district.store, {}), f"sqlite:///{tmp_path}/api.sqlite3", now=NOW)
    try:
        path = enable(api)
        for lang in ("zh-CN", "en"):  # no English name: the Chinese one in both
            page = api.client.get(path, params={"lang": lang})
            assert page.status_code == 200
            assert "<script>alert" not in page.text
            assert (
                page.text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;新泾&amp;六村&#x27;&quot;")
                == 2
            )
            assert page.text.count("<script>") == 1  # the page's own
            assert api.client.get(path + "/data", params={"lang": lang}).json()["name"] == hostile
    finally:
        api.client.close()
        api.ctx.db.close()


def test_a_store_that_does_not_answer_is_a_503_naming_no_address(
    display_district: District, tmp_path: Path
) -> None:
    dead = InfluxStore(InfluxConfig(url="http://127.0.0.1:9", database="nowhere", timeout_s=2))
    api = make_api(District(display_district.site, dead, {}), f"sqlite:///{tmp_path}/api.sqlite3", now=NOW)
    try:
        path = enable(api)
        for p in (path, path + "/data"):
            r = api.client.get(p, headers={"Accept-Language": "en"})
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "display_unavailable"
            assert "127.0.0.1" not in r.text
            assert ":9" not in r.text
            assert r.headers["retry-after"] == "60"
        # the API's own routes still say what is wrong, to those with a key
        status = api.get(f"/communities/{OWN}/status")
        assert status.status_code == 503
        assert status.json()["error"]["code"] == "store_unavailable"
    finally:
        api.client.close()
        api.ctx.db.close()
        dead.close()


def test_the_content_security_policy_admits_exactly_the_pages_style_and_script(display_api: Api) -> None:
    page = display_api.client.get(enable(display_api))
    csp = dict(
        part.strip().partition(" ")[::2] for part in page.headers["content-security-policy"].split(";")
    )
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page.text, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert csp[directive] == f"'sha256-{digest}'"
    assert csp["default-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_a_community_without_car_washes_or_river_water_shows_what_it_has(display_api: Api) -> None:
    page = display_api.client.get(enable(display_api, OTHER))  # rainwater and a master meter only
    assert page.status_code == 200
    tiles = re.findall(r'<section class="tile tile-([a-z-]+)">', page.text)
    assert tiles == ["rain", "tank", "households"]


def test_a_manager_replaces_their_own_link_and_the_old_one_is_gone(display_api: Api) -> None:
    old = enable(display_api)
    r = display_api.post(f"/communities/{OWN}/display/token", who="manager")
    assert r.status_code == 200
    new = r.json()["path"]
    assert new != old
    assert display_api.client.get(old).status_code == 404
    assert display_api.client.get(new).status_code == 200
    assert display_api.post(f"/communities/{OWN}/display/token", who="evaluator").status_code == 403
    assert display_api.post(f"/communities/{OTHER}/display/token", who="manager").status_code == 404
    with display_api.ctx.db.session() as s:
        actions = [
            (a.action, a.role) for a in s.scalars(select(AuditEntry)) if a.action.startswith("display.")
        ]
    assert actions == [("display.enable", "admin"), ("display.new_link", str(Role.MANAGER))]


def test_display_links_are_masked_in_logs() -> None:
    token = "jsd_" + "Ab-_9" * 6 + "xy"
    line = f'127.0.0.1:5000 - "GET /display/{token}/data?lang=en HTTP/1.1" 200'
    assert token not in redact(line)
    assert "/display/jsd_***/data?lang=en" in redact(line)
    assert token_sha256(token) == hashlib.sha256(token.encode()).hexdigest()


# --- the arithmetic alone ----------------------------------------------------------------------------


def test_the_quotas_are_the_notices() -> None:
    assert WASH_QUOTA_L == QUOTA_L  # the simulators' figures: 40/50/55/90 L per car
    assert UNCLASSIFIED_QUOTA_L == 40.0


def test_the_car_wash_saving_is_washes_times_quota_less_the_fresh_litres() -> None:
    washes = {"sedan": 10.0, "small": 2.0, "medium": 1.0, "large": 1.0, "": 3.0}
    fresh_l = 17 * 1.3
    want = 10 * 40 + 2 * 50 + 55 + 90 + 3 * 40 - fresh_l
    assert wash_saving_l(washes, fresh_l) == pytest.approx(want)
    assert wash_saving_l({}, 0.0) == 0.0


def _status(reuse: list[ReuseTotals], tanks: list[TankStatus]) -> CommunityStatus:
    return CommunityStatus(
        community=OWN, name="x", at=NOW.astimezone(dt.UTC), devices=[], tanks=tanks, reuse=reuse,
        reuse_today_m3=0, reuse_month_m3=0, reuse_year_m3=0, alerts=[],
    )  # fmt: skip


def _reuse(kind: str, month: float, year: float) -> ReuseTotals:
    return ReuseTotals(
        facility="f", kind=kind, device="d", quantity="q", today_m3=0, month_m3=month, year_m3=year
    )


def _tank(level: float | None, capacity: float) -> TankStatus:
    stored = None if level is None else level / 100 * capacity
    return TankStatus(
        facility="f", device="d", capacity_m3=capacity, level_pct=level, stored_m3=stored, demand_7d_m3=0,
        days_of_supply=None, minutes_to_full=None, state="normal",
    )  # fmt: skip


def test_the_figures_follow_the_documented_formulas(display_district: District) -> None:
    _, community = display_district.site.community(OWN)
    status = _status(
        [
            _reuse("rainwater_harvesting", 10, 100),
            _reuse("rainwater_harvesting", 1, 5),
            _reuse("river_water", 2, 20),
        ],
        [_tank(50, 70), _tank(20, 30), _tank(None, 10)],
    )
    washes = WashTotals({"sedan": 10.0}, {"sedan": 100.0, "large": 10.0}, 12.0, 130.0)
    figures, facts = numbers(status, community, washes, 2025)
    assert (figures.rain_month_m3, figures.rain_year_m3) == (11, 105)
    assert (figures.river_month_m3, figures.river_year_m3) == (2, 20)
    assert (figures.washes_month, figures.washes_year) == (10, 110)
    assert figures.wash_saved_month_m3 == pytest.approx((10 * 40 - 12) / 1000)
    assert figures.wash_saved_year_m3 == pytest.approx((100 * 40 + 10 * 90 - 130) / 1000)
    assert figures.wash_l_per_car_year == pytest.approx(130 / 110, abs=0.005)
    # the tanks with a level, weighted by capacity
    assert figures.tank_level_pct == pytest.approx((50 * 70 + 20 * 30) / 100)
    assert (figures.tank_stored_m3, figures.tank_capacity_m3) == (pytest.approx(41), 100)
    assert facts.tanks == 3
    # a household's daily use from the community's own claim (150 L for 2025) and its form
    assert (figures.lpcd, facts.lpcd_claim_year) == (150, 2025)
    household_l = 150 * community.population / community.households
    saved_year = 105 + 20 + (100 * 40 + 10 * 90 - 130) / 1000
    assert figures.saved_year_m3 == pytest.approx(saved_year)
    assert figures.households_year == pytest.approx(saved_year * 1000 / household_l, abs=0.05)


def test_no_car_wash_no_tank_no_claim(display_district: District) -> None:
    _, community = display_district.site.community(OWN)
    bare = community.model_copy(update={"claims": []})
    figures, facts = numbers(_status([], []), bare, None, 2025)
    assert figures.washes_month is None
    assert figures.wash_saved_year_m3 is None
    assert figures.rain_month_m3 is None
    assert figures.tank_level_pct is None
    assert facts.tanks == 0
    assert (figures.saved_year_m3, figures.households_year) == (0, 0)
    assert (figures.lpcd, facts.lpcd_claim_year) == (STANDARD_LPCD, None)


def test_the_per_capita_figure_is_the_claim_of_the_year_or_the_latest_before_it(
    display_district: District,
) -> None:
    _, community = display_district.site.community(OWN)

    def claim(year: int, value: float) -> Claim:
        return Claim(id=f"pc-{year}", facility="master", measure=Measure.PER_CAPITA_USE, value=value,
                     unit="L/person/day", year=year)  # fmt: skip

    with_claims = community.model_copy(
        update={"claims": [claim(2023, 160), claim(2025, 140), claim(2027, 130)]}
    )
    assert per_capita_lpcd(with_claims, 2026) == (140, 2025)
    assert per_capita_lpcd(with_claims, 2027) == (130, 2027)
    assert per_capita_lpcd(with_claims, 2020) == (160, 2023)  # none before: the earliest
