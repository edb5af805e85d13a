"""Every string a person types reaches the HTML as text, never as markup: the evaluation report (zh-CN
and en, and one PDF) and the API's HTML answers (the report and the naming list).

People type the inventory (districts, communities and their application-form fields, facilities,
claims' notes, devices' serial numbers and addresses), the districts' forms (imported through the API),
keys' labels, evaluators' decisions and checklist notes. Each such field gets its own payload: a
`</title><script>`, an attribute break-out `'"><img onerror>`, an `<svg onload>`, a template expression
`{{7*7}}` and a format field `{0}`, all numbered so that a leak names its field. Each page
is parsed (html.parser) and must hold no element or attribute that a payload could have brought in
(the report has no script, image, frame or event handler of its own); every payload must be absent
from the source as markup, and a field the page shows must be there as text, exactly as typed (so
neither the template expression nor the format field was evaluated).

`test_every_free_text_field_of_the_inventory_is_covered` fails when the inventory grows a text field
that is not in FREE_TEXT (to be injected) or in CATALOGUE (checked against a closed list).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from fastapi.testclient import TestClient

import jieshui.inventory as inventory
from api.app import create_app
from api.auth import Role, create_key
from api.db import Database
from api.deps import ApiContext
from jieshui.inventory import Site
from programme.forms import FormKind, FormRow, write_form
from tests.verification.conftest import YEAR, SimulatedYear
from verification.engine import verify
from verification.report import render_html, render_pdf
from verification.result import VerificationResult

COMMUNITY = "xinjing-6"

#: The inventory's free-text fields, by model: every one is injected.
FREE_TEXT: dict[str, set[str]] = {
    "District": {"name", "name_en"},
    "Community": {"name", "name_en", "street_town", "residents_committee", "contact", "address"},
    "Facility": {"name"},
    "Claim": {"note"},
    "Device": {"serial_number"},
    "ModbusTcp": {"host"},
    "ModbusRtu": {"serial_port"},
    "Replacement": {"note"},  # a meter replacement's note (the meter registry)
}
#: Text fields checked against a closed list (a profile of devices/, a measure's unit), or ids (slugs,
#: phone and postcode patterns): no markup can get through them.
CATALOGUE: dict[str, set[str]] = {"Device": {"profile"}, "Claim": {"unit"}}

Tag = tuple[str, list[tuple[str, str | None]]]


def payload(n: int) -> str:
    """The n-th field's payload: every way a string could turn into markup or be evaluated."""
    return (
        f"</title><script>x{n}</script>'\"><img src=x onerror=alert({n})><svg onload=x>{{{{7*7}}}}{{0}}#{n}"
    )


class Page(HTMLParser):
    """A page parsed: its elements with their attributes, and its text as a browser reads it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[Tag] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)


def injected(page: Page) -> list[Tag]:
    """Elements and attributes no page of ours has, which only a payload could have made."""
    return [
        (tag, attrs)
        for tag, attrs in page.tags
        if tag in ("script", "img", "iframe", "object", "embed")
        or any(
            k.startswith("on") or "javascript:" in (v or "").lower() or "alert(" in (v or "")
            for k, v in attrs
        )
    ]


@dataclass
class Payloads:
    """Which payload went into which field."""

    by_field: dict[str, str] = field(default_factory=dict)

    def new(self, where: str) -> str:
        text = payload(len(self.by_field) + 1)
        self.by_field[where] = text
        return text

    def __getitem__(self, where: str) -> str:
        return self.by_field[where]


#: What only a payload left unescaped puts in a page's source.
RAW = ("<script", "<img", "<svg onload")


def check_page(html: str, payloads: Payloads, shown: list[str], what: str) -> None:
    """No payload became markup; each field in `shown` is in the page's text exactly as typed."""
    page = Page(html)
    assert not injected(page), f"{what}: injected elements {injected(page)}"
    for fragment in RAW:
        at = html.find(fragment)
        assert at < 0, f"{what}: raw {fragment!r} in the source: ...{html[max(0, at - 100) : at + 100]}..."
    for where in shown:
        assert payloads[where] in page.text, f"{what}: {where} is not in the page's text as typed"
        assert escape(payloads[where]) in html, f"{what}: {where} is not escaped as html.escape does"


# --- the inventory's fields ---------------------------------------------------------------------------


def _str_fields(model: type[pydantic.BaseModel]) -> set[str]:
    out = set()
    for name, info in model.model_fields.items():
        args = {info.annotation, *typing.get_args(info.annotation)}
        pattern = any(getattr(m, "pattern", None) for m in info.metadata)
        if str in args and not pattern:
            out.add(name)
    return out


def test_every_free_text_field_of_the_inventory_is_covered() -> None:
    models = {
        name: obj
        for name, obj in vars(inventory).items()
        if isinstance(obj, type)
        and issubclass(obj, pydantic.BaseModel)
        and obj.__module__ == inventory.__name__
    }
    for name, model in models.items():
        text = _str_fields(model)
        classified = FREE_TEXT.get(name, set()) | CATALOGUE.get(name, set())
        assert text == classified, f"{name}: text fields {sorted(text)}, classified {sorted(classified)}"


def evil_site(site: Site, payloads: Payloads) -> Site:
    """The site with a payload in every free-text field (FREE_TEXT), each its own."""
    raw = site.model_dump()

    def fill(obj: dict[str, Any], model: str, where: str) -> None:
        for key in sorted(FREE_TEXT.get(model, ())):
            obj[key] = payloads.new(f"{where}.{key}")

    for district in raw["districts"]:
        fill(district, "District", f"district[{district['id']}]")
        for community in district["communities"]:
            c = f"community[{community['id']}]"
            fill(community, "Community", c)
            for claim in community["claims"]:
                fill(claim, "Claim", f"{c}.claim[{claim['id']}]")
            for facility in community["facilities"]:
                fill(facility, "Facility", f"{c}.facility[{facility['id']}]")
                for device in facility["devices"]:
                    d = f"{c}.device[{device['id']}]"
                    fill(device, "Device", d)
                    for i, replacement in enumerate(device.get("replacements", [])):
                        fill(replacement, "Replacement", f"{d}.replacement[{i}]")
                    protocol = device["connection"]["protocol"]
                    model = {"modbus_tcp": "ModbusTcp", "modbus_rtu": "ModbusRtu"}.get(protocol, "")
                    fill(device["connection"], model, f"{d}.connection")
    return Site.model_validate(raw)


@pytest.fixture(scope="module")
def evil(honest_year: SimulatedYear) -> tuple[Site, VerificationResult, Payloads]:
    """The honest year's site with payloads, and the engine's result on it (the readings are the same)."""
    payloads = Payloads()
    site = evil_site(honest_year.site, payloads)
    return site, verify(honest_year.store, site, COMMUNITY, YEAR), payloads


def _community_field(key: str) -> str:
    return f"community[{COMMUNITY}].{key}"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_report_shows_every_inventory_string_as_text(
    evil: tuple[Site, VerificationResult, Payloads], lang: str
) -> None:
    site, result, payloads = evil
    assert len(payloads.by_field) >= 15
    html = render_html(site, result, lang)
    name = "name" if lang == "zh-CN" else "name_en"
    check_page(html, payloads, [_community_field(name), _community_field("street_town")], f"report {lang}")
    # the title too: the first payload's </title> did not end it
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title is not None
    assert escape(payloads[_community_field(name)]) in title.group(1)


def test_the_report_shows_every_string_of_a_result_as_text(
    evil: tuple[Site, VerificationResult, Payloads],
) -> None:
    """What the report takes from a stored result (the engine writes it, but it is data): the claims'
    ids, measures, units and reasons, the meters, the period, the schema."""
    site, result, payloads = evil
    raw = result.model_dump(by_alias=True)
    raw["schema"] = payloads.new("result.schema")
    raw["period"] = [payloads.new("result.period[0]"), payloads.new("result.period[1]")]
    for i, claim in enumerate(raw["claims"]):
        for key in ("id", "measure", "unit"):
            claim[key] = payloads.new(f"result.claims[{i}].{key}")
        claim["reasons"] = [
            {
                "code": "x",
                "zh": payloads.new(f"result.claims[{i}].reason.zh"),
                "en": payloads.new(f"result.claims[{i}].reason.en"),
            }
        ]
    for i, meter in enumerate(raw["meters"]):
        meter["spike_days"] = [payloads.new(f"result.meters[{i}].spike_days")]
        meter["device"] = payloads.new(f"result.meters[{i}].device")
        meter["quantity"] = payloads.new(f"result.meters[{i}].quantity")
    raw["charts"]["coverage"] = {payloads.new("result.charts.coverage"): [100] * 365}
    evil_result = VerificationResult.model_validate(raw)
    shown = ["result.schema", "result.period[0]", "result.claims[0].id", "result.meters[0].device",
             "result.charts.coverage"]  # fmt: skip
    for lang in ("zh-CN", "en"):
        reason = "result.claims[0].reason." + ("zh" if lang == "zh-CN" else "en")
        check_page(render_html(site, evil_result, lang), payloads, [*shown, reason], f"report {lang}")


def test_the_pdf_prints_the_payload_as_text(
    evil: tuple[Site, VerificationResult, Payloads], tmp_path: Path
) -> None:
    site, result, payloads = evil
    pdf = tmp_path / "report.pdf"
    render_pdf(render_html(site, result, "zh-CN"), pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s+", "", text)
    assert re.sub(r"\s+", "", payloads[_community_field("name")]) in flat


# --- through the API --------------------------------------------------------------------------------

FORM_YEAR = 2026  # open at NOW
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Through:
    """The API on the evil site: what was typed through it, and the HTML pages it answered."""

    payloads: Payloads
    applicant: str
    pages: dict[str, str]


@pytest.fixture(scope="module")
def through_api(
    evil: tuple[Site, VerificationResult, Payloads],
    honest_year: SimulatedYear,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Through]:
    site, _, payloads = evil
    ctx = ApiContext(
        site, Database(f"sqlite:///{tmp_path_factory.mktemp('escaping')}/api.sqlite3"), honest_year.store,
        clock=lambda: NOW,
    )  # fmt: skip
    with ctx.db.session() as s:
        _, admin = create_key(s, Role.ADMIN, [], payloads.new("key.label"), "test", NOW)
    client = TestClient(create_app(ctx), raise_server_exceptions=False, headers={"X-API-Key": admin})

    def ok(r: httpx.Response, status: int = 200) -> httpx.Response:
        assert r.status_code == status, r.text
        return r

    district = site.districts[0]
    # an applicant community on the district's form of FORM_YEAR, every text field its own payload
    row = FormRow(
        seq=1, street_town=payloads.new("form.street_town"), name=payloads.new("form.name"),
        residents_committee=payloads.new("form.residents_committee"), contact=payloads.new("form.contact"),
        phone="021-62681234", postcode="200335", address=payloads.new("form.address"), households=800,
        population=2000,
    )  # fmt: skip
    form = write_form([row], "xlsx", FormKind.APPLICATION, district.name, FORM_YEAR)
    imported = ok(
        client.post(
            f"/districts/{district.id}/forms/{FORM_YEAR}", content=form, headers={"Content-Type": XLSX}
        )
    )
    applicant = imported.json()[0]["community"]
    pages: dict[str, str] = {}
    for community, year in ((COMMUNITY, YEAR), (applicant, FORM_YEAR)):
        base = f"/communities/{community}"
        ok(client.post(f"{base}/verifications/{year}"), 201)
        ok(
            client.post(
                f"{base}/verifications/{year}/decisions",
                json={"decision": "on_site_inspection", "notes": payloads.new(f"{community}.decision.notes")},
            ),
            201,
        )
        checklist = {
            key: payloads.new(f"{community}.evaluation.{key}")
            for key in ("listen_notes", "look_notes", "check_notes", "assess_notes")
        }
        ok(client.put(f"{base}/evaluations/{year}", json={"listen_done": True, **checklist}))
        for lang in ("zh-CN", "en"):
            pages[f"report {community} {lang}"] = ok(
                client.get(f"{base}/verifications/{year}/report", params={"lang": lang})
            ).text
    for year in (YEAR, FORM_YEAR):
        for lang in ("zh-CN", "en"):
            pages[f"naming {year} {lang}"] = ok(
                client.get(f"/districts/{district.id}/naming/{year}", params={"format": "html", "lang": lang})
            ).text
    yield Through(payloads, applicant, pages)
    client.close()
    ctx.db.close()


def test_the_api_answers_every_typed_string_as_text(through_api: Through) -> None:
    payloads, applicant = through_api.payloads, through_api.applicant
    district = "district[changning]"
    for what, html in through_api.pages.items():
        zh = what.endswith("zh-CN")
        if what.startswith(f"report {COMMUNITY}"):
            shown = [_community_field("name" if zh else "name_en"), _community_field("street_town")]
        elif what.startswith(f"report {applicant}"):
            shown = ["form.name", "form.street_town"]
        else:  # the naming list: the district, every community with its street
            shown = [f"{district}.name", _community_field("name"), _community_field("street_town"), "form.name",
                     "form.street_town"]  # fmt: skip
        check_page(html, payloads, shown, what)
