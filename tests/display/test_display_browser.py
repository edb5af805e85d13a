"""The community display page in a real browser: headless Chromium (Debian's, driven by Playwright)
against the API served by uvicorn on a free port, on the real servers of conftest.py (a backfilled
community in influxd, SQLite), with the API's clock pinned into the data (so uvicorn runs in a thread
with the same context, not `jieshui api` on the wall clock).

An admin turns the page on through the API; the browser opens the link at 1920x1080 and the figures in
the page (`data-figure` elements, `data-value` the number) are checked against the API's own numbers
(GET /communities/{id}/status) and, for the car washes, which the status does not total, against the
raw per-wash points in InfluxDB; the page is screenshotted (in the test's folder) and must fit the
screen with its figures in large type, with no script or style blocked by its Content-Security-Policy;
no private field of the inventory (device, facility and meter ids, contact, phone, address, the
district, keys, the link itself) is in its HTML or its data; it is not indexable (meta and header); the
en toggle shows the same figures in English; the page refreshes its figures by itself, and a page
turned off (or a link replaced, or never made) is a 404.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from api.app import create_app
from api.display import WASH_QUOTA_L
from api.routes.display import token_sha256
from jieshui.inventory import Community, Measure
from simulators.model import SHANGHAI
from tests.api.conftest import OTHER, OWN, Api, District
from tests.display.conftest import NOW
from verification.report import chromium

WIDTH, HEIGHT = 1920, 1080
NS = 1_000_000_000


@dataclass
class Served:
    """The API on a real port, and the in-process view of it (keys, context)."""

    api: Api
    base: str

    def call(self, method: str, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.api.headers(who), timeout=30, **kw)

    def enable(self, community: str = OWN) -> str:
        """Turn the community's page on; its link."""
        r = self.call("PUT", f"/communities/{community}/display", json={"enabled": True})
        assert r.status_code == 200, r.text
        link = r.json()["link"]
        assert str(link).startswith(self.base + "/display/jsd_"), link
        return str(link)


@pytest.fixture
def served(display_api: Api) -> Iterator[Served]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(display_api.ctx), host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="display-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Served(display_api, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A 1920x1080 page; every console error (a CSP violation, a failed script) fails the test."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, locale="zh-CN")
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # (the 404s and the 503 the tests ask for on purpose are logged as failed loads)
        provoked = re.search(r"Failed to load resource: .* status of (404|503)", message.text)
        if message.type == "error" and not provoked:
            errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == [], f"console errors: {errors}"


FIGURES = """() => Object.fromEntries([...document.querySelectorAll('[data-figure]')]
    .map(e => [e.dataset.figure, [e.dataset.value, e.textContent]]))"""


def figures_in(page: Page) -> dict[str, float | None]:
    """Each figure's number, as the page carries it."""
    found: dict[str, list[str]] = page.evaluate(FIGURES)
    return {k: float(v) if v else None for k, (v, _) in found.items()}


def _community(served: Served, community_id: str = OWN) -> Community:
    return next(c for _, c in served.api.ctx.site.communities() if c.id == community_id)


def expected_washes(district: District, community: Community) -> dict[str, float]:
    """Washes and their saving against the quotas (m3) this month and this year, from the raw per-wash
    points in InfluxDB (not the API's daily aggregates)."""
    starts = {
        "month": dt.datetime(NOW.year, NOW.month, 1, tzinfo=SHANGHAI),
        "year": dt.datetime(NOW.year, 1, 1, tzinfo=SHANGHAI),
    }
    out: dict[str, float] = {}
    for period, start in starts.items():
        (s,) = district.store.query(
            "SELECT wash_l, vehicle_class FROM car_wash WHERE community = $c AND time >= $a AND time <= $b",
            params={"c": community.id, "a": int(start.timestamp()) * NS, "b": int(NOW.timestamp()) * NS},
        )
        litres = s.values("wash_l")
        washes = np.isfinite(litres)
        quota = np.array([WASH_QUOTA_L.get(str(c), 40.0) for c in s.columns["vehicle_class"][washes]])
        out[f"washes_{period}"] = float(washes.sum())
        out[f"wash_saved_{period}_m3"] = float((quota - litres[washes]).sum() / 1000)
    return out


def private_strings(served: Served, community: Community, token: str) -> list[str]:
    """What the page must never show: every identifier and personal field the inventory and the API
    hold for the community (and its district), the keys, the link's secret and its hash."""
    district = next(d for d, c in served.api.ctx.site.communities() if c.id == community.id)
    found = [community.contact, community.phone, community.address, community.postcode,
             community.residents_committee, community.street_town, district.id, district.name,
             token, token_sha256(token), *served.api.keys.values()]  # fmt: skip
    for facility, device in community.devices():
        found += [device.id, device.profile, facility.name]
        if device.meter is not None:
            found.append(device.meter.serial)
        connection = device.connection
        if connection.protocol == "modbus_tcp":
            found.append(f"{connection.host}:{connection.port}")
    found += [f.id for f in community.facilities if not f.id.isalpha()]
    found += [c.id for c in community.claims]
    return found


#: A facility id that is a plain word (rainwater, master) may be a word of the page's English text;
#: as an identifier it would be quoted, or in a path or an attribute.
def plain_word_ids(community: Community) -> list[re.Pattern[str]]:
    return [re.compile(rf"[\"'/=]{f.id}[\"'/&]") for f in community.facilities if f.id.isalpha()]


def test_the_page_shows_the_apis_own_figures_on_a_1920x1080_screen(
    served: Served, page: Page, display_district: District, tmp_path: Path
) -> None:
    link = served.enable()
    response = page.goto(link)
    assert response is not None
    assert response.status == 200
    status = served.call("GET", f"/communities/{OWN}/status").json()
    shown = figures_in(page)

    def reuse(kind: str, period: str) -> float:
        return sum(r[f"{period}_m3"] for r in status["reuse"] if r["kind"] == kind)

    (tank,) = status["tanks"]
    want: dict[str, float] = {
        "rain_month_m3": reuse("rainwater_harvesting", "month"),
        "rain_year_m3": reuse("rainwater_harvesting", "year"),
        "river_month_m3": reuse("river_water", "month"),
        "river_year_m3": reuse("river_water", "year"),
        "tank_level_pct": tank["level_pct"],
        "tank_stored_m3": tank["stored_m3"],
        "tank_capacity_m3": tank["capacity_m3"],
        **expected_washes(display_district, _community(served)),
    }
    for key, value in want.items():
        assert shown[key] == pytest.approx(value, abs=1e-6), key
    # the test's period holds reuse, river water and washes in both the month and the year
    assert all(want[k] > 0 for k in want if not k.startswith("tank")), want
    assert want["rain_year_m3"] > want["rain_month_m3"]
    assert want["washes_year"] > want["washes_month"]
    # the equivalence, from the community's own per-capita claim
    community = _community(served)
    lpcd = next(c.value for c in community.claims if c.measure is Measure.PER_CAPITA_USE)
    saved_year = want["rain_year_m3"] + want["river_year_m3"] + want["wash_saved_year_m3"]
    assert shown["saved_year_m3"] == pytest.approx(saved_year, abs=1e-5)
    household_l = lpcd * community.population / community.households
    assert shown["households_year"] == pytest.approx(saved_year * 1000 / household_l, abs=0.05)
    # the texts are the numbers, rounded for reading
    texts = page.evaluate(FIGURES)
    assert texts["rain_month_m3"][1] == f"{want['rain_month_m3']:,.1f}"
    assert texts["washes_year"][1] == f"{want['washes_year']:,.0f}"
    assert texts["at"][1] == "2025-09-10 10:00"

    # the screenshot, at the screen's size, and not a blank one
    shot = tmp_path / "display-xinjing-6.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        assert len(image.convert("L").resize((96, 54)).getcolors(256) or []) > 20  # not blank
    # everything fits the screen, nothing overflows its tile, and the figures read from a distance
    layout = page.evaluate(
        """() => {
        const px = (sel) => Math.min(...[...document.querySelectorAll(sel)]
            .map(e => parseFloat(getComputedStyle(e).fontSize)));
        const boxes = [...document.querySelectorAll('body *')].map(e => e.getBoundingClientRect());
        return {
          right: Math.max(...boxes.map(b => b.right)), bottom: Math.max(...boxes.map(b => b.bottom)),
          overflowing: [...document.querySelectorAll('.tile, header, footer')]
              .filter(e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1)
              .map(e => e.className || e.tagName),
          tiles: document.querySelectorAll('.tile').length,
          figure: px('.main'), label: px('.tile h2'), sub: px('.sub'), name: px('h1'), small: px('footer'),
        };
    }"""
    )
    assert layout["right"] <= WIDTH, layout
    assert layout["bottom"] <= HEIGHT, layout
    assert layout["overflowing"] == [], layout
    assert layout["tiles"] == 6  # rain, river, washes, their saving, the tank, the households
    big = {k: layout[k] for k in ("figure", "name", "label", "sub", "small")}
    assert big == {"figure": 124, "name": 72, "label": 36, "sub": 30, "small": 17}  # px
    assert big["small"] >= 16, "the small print"


def test_the_page_holds_no_private_field_and_is_not_indexable(served: Served, page: Page) -> None:
    link = served.enable()
    token = link.rsplit("/", 1)[1]
    community = _community(served)
    secrets_ = private_strings(served, community, token)
    for lang in ("zh-CN", "en"):
        response = page.goto(f"{link}?lang={lang}")
        assert response is not None
        assert response.status == 200
        assert response.headers["x-robots-tag"] == "noindex, nofollow"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        robots = page.locator('meta[name="robots"]').get_attribute("content")
        assert robots == "noindex, nofollow"
        data = served.call("GET", f"/display/{token}/data", who=None, params={"lang": lang})
        assert data.headers["x-robots-tag"] == "noindex, nofollow"
        for where, text in (("served HTML", response.text()), ("DOM", page.content()), ("data", data.text)):
            leaked = [s for s in secrets_ if s in text]
            leaked += [p.pattern for p in plain_word_ids(community) if p.search(text)]
            assert leaked == [], f"{lang} {where} shows {leaked}"
    # the inventory does hold them: the check looks for something
    status = served.call("GET", f"/communities/{OWN}/status").text
    assert sum(s in status for s in secrets_) >= 5


def test_english_shows_the_same_figures(served: Served, page: Page) -> None:
    page.goto(served.enable())
    zh = figures_in(page)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == _community(served).name
    assert "本月雨水回用" in page.locator("main").inner_text()
    page.locator("a.lang").click()
    page.wait_for_url(re.compile(r"\?lang=en$"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == _community(served).name_en
    body = page.locator("body").inner_text()
    assert "Rainwater reused this month" in body
    assert "本月" not in body
    assert figures_in(page) == zh
    overflow = page.evaluate(
        "() => [...document.querySelectorAll('.tile, header, footer')]"
        ".filter(e => e.scrollHeight > e.clientHeight + 1).length"
    )
    assert overflow == 0  # the longer English labels fit too
    page.locator("a.lang").click()
    page.wait_for_url(re.compile(r"\?lang=zh-CN$"))
    assert page.locator("html").get_attribute("lang") == "zh-CN"


def test_the_page_refreshes_itself_and_goes_when_turned_off(served: Served, page: Page) -> None:
    page.clock.install()
    link = served.enable()
    page.goto(link)
    before = page.evaluate(FIGURES)
    page.evaluate("() => document.querySelectorAll('[data-figure]').forEach(e => { e.textContent = 'x'; })")
    page.clock.run_for(61_000)  # the page fetches its figures every minute
    page.wait_for_function("() => document.querySelector('[data-figure=rain_month_m3]').textContent !== 'x'")
    assert page.evaluate(FIGURES) == before
    assert page.locator("html").get_attribute("data-stale") is None
    assert not page.locator(".stale").is_visible()
    # the figures cannot be fetched: the last ones stay, marked stale, until they can again
    page.route("**/data?*", lambda route: route.fulfill(status=503, body="{}"))
    page.clock.run_for(61_000)
    page.wait_for_function("() => document.documentElement.hasAttribute('data-stale')")
    assert page.evaluate(FIGURES) == before
    assert page.locator(".stale").is_visible()
    page.unroute("**/data?*")
    page.clock.run_for(61_000)
    page.wait_for_function("() => !document.documentElement.hasAttribute('data-stale')")
    # turned off: the next refresh gets a 404 and reloads, and the page says it is gone
    r = served.call("PUT", f"/communities/{OWN}/display", json={"enabled": False})
    assert r.status_code == 200
    assert (r.json()["enabled"], r.json()["link"]) == (False, None)
    with page.expect_navigation() as navigation:
        page.clock.run_for(61_000)
    assert navigation.value is not None
    assert navigation.value.status == 404
    assert "display_not_found" in page.content()


def test_a_page_that_is_off_or_unknown_is_a_404(served: Served, page: Page) -> None:
    link = served.enable(OTHER)
    assert page.goto(link).status == 200  # type: ignore[union-attr]
    assert served.call("PUT", f"/communities/{OTHER}/display", json={"enabled": False}).status_code == 200
    off = page.goto(link)
    assert off is not None
    assert off.status == 404
    assert off.headers["x-robots-tag"] == "noindex, nofollow"
    off_body = off.json()
    assert off_body["error"]["code"] == "display_not_found"
    unknown = page.goto(served.base + "/display/jsd_" + "A" * 32)
    assert unknown is not None
    assert unknown.status == 404
    assert unknown.json() == off_body  # the same answer: a link cannot be told from one turned off
    # turned on again, the same link works; a new link retires the old one
    assert served.call("PUT", f"/communities/{OTHER}/display", json={"enabled": True}).status_code == 200
    assert page.goto(link).status == 200  # type: ignore[union-attr]
    new = served.call("POST", f"/communities/{OTHER}/display/token", who="manager_other").json()["link"]
    assert page.goto(link).status == 404  # type: ignore[union-attr]
    assert page.goto(new).status == 200  # type: ignore[union-attr]
