"""The authorization matrix: every route of the app x every role x own/other community.

The rows are keyed by (method, path) and checked against the app's own routes, so a new endpoint without
a row fails here before anything else runs. Each row says who may use the route and how it is scoped;
the expected answer of every cell (no key, a garbage key, admin, evaluator, a manager on their own
community, on another one and on one that does not exist) follows from that, and every cell is requested
against real servers (a backfilled influxd and SQLite / PostgreSQL). Mismatches are collected and shown
together, so one run lists all of them. A district's routes are also asked about a district that does
not exist, and by a manager of none of its communities: 404, as a district they may not see (unless
their role may not use the route at all: 403 first, whatever the district).

Rules (api/auth.py): only the documentation, /healthz and the community display pages (whose link is the
secret) answer without a key (/auth/token takes the key in its form); admin does everything; evaluator
reads everything and runs verifications and records decisions, but does no key/audit administration and
acknowledges no alerts; a manager sees only their communities, and another community (or another
community's alert) is 404, exactly as a missing one. A community's display page is turned on by admins;
its link is replaced by admins and the community's managers; every role reads whether it is on.
The programme (docs/programme.md): every role reads cycles, forms (a manager only their communities'
rows), evaluations and naming lists; only admins set a cycle or import a district's form (district-wide,
so a manager is refused even for their own district); evaluators and admins fill in evaluations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import fastapi.routing
import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.app import create_app
from api.auth import Role, create_key
from api.db import Database
from api.deps import ApiContext
from api.live import NS
from devices.profile import find_profile
from jieshui.inventory import load_site
from programme.forms import FormKind, FormRow, write_form
from store.influx import InfluxStore
from store.lineprotocol import Point
from tests.api.conftest import NOW, OTHER, OWN, SITE, Api, District, make_api

YEAR = 2025
DISTRICT = "changning"
MISSING_DISTRICT = "no-such-district"
DEVICE = "rw-controller"  # in both OWN and OTHER: a rainwater controller, which reports fault_code
MISSING = "no-such-community"
MISSING_ALERT = 2**31 - 1
GARBAGE_KEY = "jsk_000000000000_" + "x" * 43
GARBAGE_TOKEN = "jst_" + "x" * 43
COLLECTOR = "authz-test"  # the tag of the points this test writes, and deletes afterwards
LATER = NOW + dt.timedelta(minutes=1)  # the API's "now": the fault points written below are the latest
#: The programme year whose forms are open at LATER (2026's applications close on 18 October 2026).
FORM_YEAR = 2026
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Routes that are not API routes (FastAPI's documentation), all public.
DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}  # /redoc is off

Scope = Literal["public", "token", "global", "district", "community", "alert"]
Expect = tuple[int, str | None]  # status, and the error code (None for a success)


@dataclass(frozen=True)
class Cell:
    """One column of the matrix: who calls, and (for scoped routes) on which community."""

    label: str
    who: str | None  # a key of Api.keys ("garbage_token": a bearer token), or None for no key
    community: str | None = None
    relation: Literal["any", "own", "other", "missing"] = "any"


@dataclass
class Row:
    """Who may use a route: `evaluator` / `manager` say whether that role may (admin always may)."""

    scope: Scope
    ok: int = 200
    evaluator: bool = True
    manager: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    #: a raw request body (and its Content-Type), for the routes that take a file
    content: tuple[bytes, str] | None = None
    year: int = YEAR  # the path's {year}
    content_type: str = "application/json"
    #: a look at a successful answer: what is wrong with it, or None
    check: Callable[[Matrix, Cell, httpx.Response], str | None] | None = None


# --- visibility checks of successful answers ---------------------------------------------------------


def _visible(m: Matrix, cell: Cell) -> set[str]:
    if cell.who == "manager":
        return {OWN}
    if cell.who == "manager_other":
        return {OTHER}
    return m.all_communities


def _same(what: str, got: set[str], want: set[str]) -> str | None:
    return None if got == want else f"{what}: got {sorted(got)}, want {sorted(want)}"


def _check_me(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    want = {"admin": "admin", "evaluator": "evaluator"}.get(cell.who or "", "manager")
    return None if r.json()["role"] == want else f"role {r.json()['role']}, want {want}"


def _check_communities(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("communities", {c["id"] for c in r.json()}, _visible(m, cell))


def _check_districts(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("communities", {c for d in r.json() for c in d["communities"]}, _visible(m, cell))


def _check_district(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("communities", set(r.json()["communities"]), _visible(m, cell))


def _check_verdicts(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("communities", {c["community"] for c in r.json()["communities"]}, _visible(m, cell))


def _check_open_alerts(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    visible = _visible(m, cell)
    outside = {a["community"] for a in r.json()} - visible
    if outside:
        return f"alerts of {sorted(outside)} shown"
    seen = {a["id"] for a in r.json()}
    want = {i for c, i in m.alert_ids.items() if c in visible}
    mine = seen & set(m.alert_ids.values())
    return None if mine == want else f"test alerts {sorted(mine)}, want {sorted(want)}"


def _check_alerts(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    communities = {a["community"] for a in r.json()}
    if communities - {cell.community}:
        return f"alerts of {sorted(communities)} shown for {cell.community}"
    ids = {a["id"] for a in r.json()}
    want = m.alert_ids[cast(str, cell.community)]
    return None if want in ids else f"the fault alert {want} is missing"


def _check_community_field(key: str) -> Callable[[Matrix, Cell, httpx.Response], str | None]:
    def check(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
        body = r.json()
        rows = body if isinstance(body, list) else [body]
        wrong = {str(x[key]) for x in rows if x[key] != cell.community}
        return f"{key} {sorted(wrong)}, want {cell.community}" if wrong else None

    return check


def _check_alert_ack(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    body = r.json()
    key_id = m.api.keys[cast(str, cell.who)].split("_")[1]
    if body["community"] != cell.community or body["acknowledged_by"] != key_id:
        return f"acknowledged {body['community']} by {body['acknowledged_by']}, want {cell.community} by {key_id}"
    return None


def _check_report(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return None if "<html" in r.text else "not an HTML report"


def _check_open_cycles(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    years = [c["year"] for c in r.json()]
    return None if years == [YEAR] else f"cycles {years} open, want [{YEAR}] (its guidance runs to January)"


def _check_cycle(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    year = int(r.request.url.path.rsplit("/", 1)[1])
    return None if r.json()["year"] == year else f"cycle of {r.json()['year']}, want {year}"


def _check_cycle_set(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    deadline, want = r.json()["application_deadline"], CYCLE["application"]["end"]
    return _check_cycle(m, cell, r) or (None if deadline == want else f"deadline {deadline}, want {want}")


def _check_form_rows(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("form rows", {a["community"] for a in r.json()}, _visible(m, cell) & set(FORM_COMMUNITIES))


def _check_naming(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    return _same("naming rows", {x["community"] for x in r.json()["rows"]}, _visible(m, cell))


def _check_display_page(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
    if r.headers.get("x-robots-tag") != "noindex, nofollow":
        return f"X-Robots-Tag {r.headers.get('x-robots-tag')}"
    return None if _NAMES[OWN] in r.text else "not the page of OWN"


def _check_display(link: Callable[[Cell], bool]) -> Callable[[Matrix, Cell, httpx.Response], str | None]:
    """A community's display settings, with its link only in the answer that made it."""

    def check(m: Matrix, cell: Cell, r: httpx.Response) -> str | None:
        body = r.json()
        if body["community"] != cell.community:
            return f"community {body['community']}, want {cell.community}"
        shown = body["link"] is not None and body["path"].startswith("/display/jsd_")
        return None if shown == link(cell) else f"link {body['link']!r}"

    return check


# --- the programme's bodies --------------------------------------------------------------------------

_NAMES = {c.id: c.name for _, c in load_site(SITE).communities()}
#: The communities of the application form of FORM_YEAR: inventory ones, so the registry stays as it is.
FORM_COMMUNITIES = (OWN, OTHER)
FORM = write_form(
    [
        FormRow(
            seq=i,
            street_town="新泾镇",
            name=_NAMES[cid],
            residents_committee=f"{_NAMES[cid]}居委",
            contact="王丽",
            phone="021-62681234",
            postcode="200335",
            address=f"长宁区哈密路{1000 + i}弄",
            households=1200,
            population=3000,
        )
        for i, cid in enumerate(FORM_COMMUNITIES, start=1)
    ],
    "xlsx",
    FormKind.APPLICATION,
    "长宁区",
    FORM_YEAR,
)
#: A cycle far from every other row's years: the notice's windows, but a deadline of 20 October (what the
#: check looks for).
CYCLE_YEAR = 2030
CYCLE = {
    "application": {"start": "2030-09-01", "end": "2030-10-20"},
    "training": {"start": "2030-11-11", "end": "2030-11-20"},
    "guidance": {"start": "2030-11-01", "end": "2031-01-31"},
    "evaluation": {"start": "2031-02-01", "end": "2031-04-30"},
    "naming": {"start": "2031-05-01", "end": "2031-05-31"},
}


# --- the matrix --------------------------------------------------------------------------------------

VERIFICATION = "/communities/{community_id}/verifications/{year}"
EVALUATION = "/communities/{community_id}/evaluations/{year}"
FORMS = "/districts/{district_id}/forms/{year}"

ROWS: dict[tuple[str, str], Row] = {
    # public
    ("GET", "/healthz"): Row("public"),
    ("POST", "/auth/token"): Row("token"),
    # admin only
    ("POST", "/keys"): Row(
        "global", ok=201, evaluator=False, manager=False, json={"role": "evaluator", "label": "authz"}
    ),
    ("GET", "/keys"): Row("global", evaluator=False, manager=False),
    ("DELETE", "/keys/{key_id}"): Row("global", ok=204, evaluator=False, manager=False, content_type=""),
    ("GET", "/audit"): Row("global", evaluator=False, manager=False),
    # every role, filtered to what the caller may see
    ("GET", "/me"): Row("global", check=_check_me),
    ("GET", "/communities"): Row("global", check=_check_communities),
    ("GET", "/districts"): Row("global", check=_check_districts),
    ("GET", "/alerts"): Row("global", check=_check_open_alerts),
    ("GET", "/districts/{district_id}"): Row("district", check=_check_district),
    ("GET", "/districts/{district_id}/verdicts"): Row(
        "district", params={"year": YEAR}, check=_check_verdicts
    ),
    # one community
    ("GET", "/communities/{community_id}"): Row("community", check=_check_community_field("id")),
    ("GET", "/communities/{community_id}/devices"): Row("community"),
    ("GET", "/communities/{community_id}/claims"): Row("community"),
    ("GET", "/communities/{community_id}/status"): Row(
        "community", check=_check_community_field("community")
    ),
    ("GET", "/communities/{community_id}/alerts"): Row("community", check=_check_alerts),
    ("GET", "/communities/{community_id}/series"): Row(
        "community", params={"quantity": "level_pct"}, check=_check_community_field("community")
    ),
    ("GET", "/communities/{community_id}/devices/{device_id}/series"): Row(
        "community", params={"quantity": "level_pct"}, check=_check_community_field("community")
    ),
    ("GET", VERIFICATION): Row("community", check=_check_community_field("community")),
    ("POST", VERIFICATION): Row(
        "community", ok=201, manager=False, check=_check_community_field("community")
    ),
    ("GET", VERIFICATION + "/report"): Row(
        "community", params={"format": "html"}, content_type="text/html", check=_check_report
    ),
    ("GET", VERIFICATION + "/decisions"): Row("community", check=_check_community_field("community")),
    ("POST", VERIFICATION + "/decisions"): Row(
        "community",
        ok=201,
        manager=False,
        json={"decision": "on_site_inspection", "notes": "authz matrix"},
        check=_check_community_field("community"),
    ),
    # one alert, of a community
    ("POST", "/alerts/{alert_id}/acknowledge"): Row(
        "alert", evaluator=False, json={"note": "authz matrix"}, check=_check_alert_ack
    ),
    # the programme: cycles (admins set them), district forms (admins import them for the district's
    # office; a manager reads their communities' rows), evaluations (evaluators write), naming lists
    ("GET", "/cycles"): Row("global", check=_check_open_cycles),
    ("GET", "/cycles/{year}"): Row("global", year=FORM_YEAR, check=_check_cycle),
    ("PUT", "/cycles/{year}"): Row(
        "global", evaluator=False, manager=False, year=CYCLE_YEAR, json=CYCLE, check=_check_cycle_set
    ),
    ("POST", FORMS): Row(
        "district",
        evaluator=False,
        manager=False,
        year=FORM_YEAR,
        params={"form": "application", "format": "xlsx"},
        content=(FORM, XLSX),
        check=_check_form_rows,
    ),
    ("GET", FORMS): Row("district", year=FORM_YEAR, params={"form": "application"}, check=_check_form_rows),
    ("GET", "/districts/{district_id}/naming/{year}"): Row("district", check=_check_naming),
    ("GET", EVALUATION): Row("community", check=_check_community_field("community")),
    ("PUT", EVALUATION): Row(
        "community",
        manager=False,
        json={"listen_done": True, "result": "not_passed"},
        check=_check_community_field("community"),
    ),
    # evidence: the meter registry (api/routes/meters.py)
    ("GET", "/communities/{community_id}/meters"): Row("community"),
    ("PUT", "/communities/{community_id}/devices/{device_id}/meter"): Row(
        "community",
        evaluator=False,
        json={"serial": "AUTHZ-0001", "nominal_dn": 40, "installed_on": "2025-01-15"},
    ),
    ("GET", "/communities/{community_id}/devices/{device_id}/replacements"): Row("community"),
    ("POST", "/communities/{community_id}/devices/{device_id}/replacements"): Row(
        "community",
        ok=201,
        evaluator=False,
        json={
            "quantity": "supply_m3",
            "replaced_at": "2021-03-01T10:00:00+08:00",
            "old_serial": "AUTHZ-OLD",
            "old_final_reading": 12.5,
            "new_serial": "AUTHZ-NEW",
            "new_first_reading": 0.0,
        },
    ),
    # evidence: signing keys and signatures (api/routes/signing.py)
    # The admin registers a key (the public key of Ed25519 private bytes 0..31) and then revokes it:
    # the revocation row comes after the registration row. Public keys are public: every role lists them.
    ("POST", "/signing-keys"): Row(
        "global",
        ok=201,
        evaluator=False,
        manager=False,
        json={"signer": "authz matrix", "public_key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="},
    ),
    ("GET", "/signing-keys"): Row("global"),
    ("POST", "/signing-keys/revoke"): Row(
        "global",
        evaluator=False,
        manager=False,
        json={"fingerprint": "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"},
    ),
    ("GET", VERIFICATION + "/signatures"): Row("community", check=_check_community_field("community")),
    # A signature valid for two communities cannot exist, so the matrix only checks one (`check=true`, which
    # records nothing and answers 200 with the outcome, after the same role and scope rules): a document for
    # OWN by a key nobody registered is refused as such on OWN, and for the community on OTHER.
    ("POST", VERIFICATION + "/signatures"): Row(
        "community",
        manager=False,
        params={"check": "true"},
        json={
            "format": "jieshui-signature/1",
            "artifact": "verdict_json",
            "community": OWN,
            "year": YEAR,
            "sha256": "0" * 64,
            "signer": "authz matrix",
            "signed_at": "2026-01-05T00:00:00Z",
            "fingerprint": "65b60673d6ed884bf01c2c222d82ada0740f29ac3355d6a925c81f17f47a27b8",
            "signature": "A" * 86 + "==",
        },
        check=lambda m, cell, r: (
            None
            if r.json()["code"]
            == ("signing_key_unregistered" if cell.community == OWN else "signature_scope_mismatch")
            else f"outcome {r.json()}"
        ),
    ),
    # evidence: daily digests (api/routes/evidence.py)
    ("GET", "/communities/{community_id}/evidence/{year}"): Row(
        "community", check=_check_community_field("community")
    ),
    ("POST", "/communities/{community_id}/digests"): Row("community", evaluator=False, manager=False),
    # display (api/routes/display.py)
    # The page and its figures are public: whoever has the link, whatever key comes along (none is
    # looked at). OWN's page is on (`_matrix`); these rows come before the one that replaces its link.
    ("GET", "/display/{token}"): Row("public", content_type="text/html", check=_check_display_page),
    ("GET", "/display/{token}/data"): Row(
        "public",
        check=lambda m, cell, r: None if r.json()["name"] == _NAMES[OWN] else f"name {r.json()['name']}",
    ),
    ("GET", "/communities/{community_id}/display"): Row(
        "community", check=_check_display(lambda cell: False)
    ),
    # turned on: OWN's page is on already (no new link), OTHER's is made now (its link, once)
    ("PUT", "/communities/{community_id}/display"): Row(
        "community",
        evaluator=False,
        manager=False,
        json={"enabled": True},
        check=_check_display(lambda cell: cell.community == OTHER),
    ),
    # a manager replaces their own community's link (the screens are theirs); admins any
    ("POST", "/communities/{community_id}/display/token"): Row(
        "community", evaluator=False, check=_check_display(lambda cell: True)
    ),
}

NO_KEY = Cell("no key", None)
GARBAGE = Cell("garbage key", "garbage")
GARBAGE_BEARER = Cell("garbage bearer token", "garbage_token")


def cells(scope: Scope) -> list[Cell]:
    """The columns of a row of this scope."""
    anyone = [NO_KEY, GARBAGE, GARBAGE_BEARER]
    if scope in ("public", "token", "global"):
        return [*anyone, *(Cell(w, w) for w in ("admin", "evaluator", "manager", "manager_other"))]
    if scope == "district":
        return [
            *anyone,
            *(Cell(w, w) for w in ("admin", "evaluator", "manager", "manager_other")),
            Cell("manager of none of its communities", "manager_none", relation="other"),
            *(
                Cell(f"{w} on a missing district", w, relation="missing")
                for w in ("admin", "evaluator", "manager")
            ),
        ]
    return [
        *(Cell(f"{c.label} on {OWN}", c.who, OWN) for c in anyone),
        Cell(f"admin on {OWN}", "admin", OWN),
        Cell(f"admin on {OTHER}", "admin", OTHER),
        Cell(f"evaluator on {OWN}", "evaluator", OWN),
        Cell(f"evaluator on {OTHER}", "evaluator", OTHER),
        Cell(f"manager on own {OWN}", "manager", OWN, "own"),
        Cell(f"manager_other on own {OTHER}", "manager_other", OTHER, "own"),
        Cell(f"manager on other {OTHER}", "manager", OTHER, "other"),
        Cell(f"manager_other on other {OWN}", "manager_other", OWN, "other"),
        Cell("manager on a missing one", "manager", MISSING, "missing"),
    ]


def expected(row: Row, cell: Cell) -> Expect:
    """What the rules say the cell answers."""
    if row.scope == "public":
        return (row.ok, None)
    if cell.who in (None, "garbage", "garbage_token"):
        return (401, "unauthenticated")
    if row.scope == "token":
        return (row.ok, None)
    if row.scope == "district" and cell.relation in ("other", "missing"):
        # a role that may not use the route is told so whatever the district; the others get the 404
        # of a district they do not see
        allowed = cell.who == "admin" or (row.evaluator if cell.who == "evaluator" else row.manager)
        return (404, "district_not_found") if allowed else (403, "forbidden_role")
    if cell.relation in ("other", "missing"):
        return (404, "alert_not_found" if row.scope == "alert" else "community_not_found")
    if cell.who == "admin":
        return (row.ok, None)
    allowed = row.evaluator if cell.who == "evaluator" else row.manager
    return (row.ok, None) if allowed else (403, "forbidden_role")


def app_routes(app: FastAPI) -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every API route, and the paths of every other route, as the app serves them.

    FastAPI >= 0.16x keeps included routers as such in `app.routes`; `iter_route_contexts` flattens them
    (older versions list the routes themselves)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    api: set[tuple[str, str]] = set()
    other: set[str] = set()
    routes: list[Any] = list(flatten(app.routes) if flatten is not None else app.routes)
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute):
            api |= {(method, route.path) for method in route.methods or ()}
        else:
            other.add(route.path)
    return api, other


def _bare_context() -> ApiContext:
    """Enough of a context to build the app and list its routes (no server is asked)."""
    return ApiContext(site=load_site(SITE), db=cast(Database, None), store=cast(InfluxStore, None))


def test_every_route_has_a_row_in_the_matrix() -> None:
    app = create_app(_bare_context())
    api_routes, other_routes = app_routes(app)
    assert api_routes, "no API routes found: the route walk is broken"
    assert sorted(api_routes - set(ROWS)) == [], "routes without a row in the authorization matrix"
    assert sorted(set(ROWS) - api_routes) == [], "rows for routes the app does not have"
    assert other_routes <= DOC_ROUTES, (
        f"non-API routes besides the documentation: {other_routes - DOC_ROUTES}"
    )
    # and the published schema lists exactly the same operations
    schema = app.openapi()["paths"]
    published = {(m.upper(), p) for p, ops in schema.items() for m in ops}
    assert published == api_routes


# --- running it --------------------------------------------------------------------------------------


@dataclass
class Matrix:
    api: Api
    all_communities: set[str]
    alert_ids: dict[str, int] = field(default_factory=dict)
    display_token: str = ""  # the link of OWN's display page

    def throwaway_key(self) -> tuple[str, str]:
        r = self.api.post("/keys", json={"role": "evaluator", "label": "authz throwaway"})
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["key"]

    def url(self, path: str, row: Row, cell: Cell, key_id: str) -> str:
        community = cell.community or OWN
        alert = MISSING_ALERT if cell.relation == "missing" else self.alert_ids.get(community, MISSING_ALERT)
        missing_district = row.scope == "district" and cell.relation == "missing"
        return path.format(
            community_id=community,
            year=row.year,
            device_id=DEVICE,
            district_id=MISSING_DISTRICT if missing_district else DISTRICT,
            alert_id=alert,
            key_id=key_id,
            token=self.display_token,
        )

    def request(self, method: str, path: str, row: Row, cell: Cell) -> tuple[httpx.Response, str, str]:
        """The cell's answer, the URL asked, and the throwaway key made for it (or "")."""
        key_id = throwaway = ""
        if "{key_id}" in path:
            key_id, throwaway = self.throwaway_key()
        url = self.url(path, row, cell, key_id)
        kw: dict[str, Any] = {"params": row.params}
        if row.json is not None:
            kw["json"] = row.json
        body_headers: dict[str, str] = {}
        if row.content is not None:
            kw["content"], body_headers["Content-Type"] = row.content
        if row.scope == "token":  # the key goes in the form, not a header
            secret = self.api.keys[cell.who] if cell.who else ""
            kw["data"] = {"grant_type": "client_credentials", "client_secret": secret}
            return self.api.client.request(method, url, **kw), url, throwaway
        if cell.who == "garbage_token":
            headers = {"Authorization": f"Bearer {GARBAGE_TOKEN}"}
        else:
            headers = self.api.headers(cell.who)
        r = self.api.client.request(method, url, headers={**headers, **body_headers}, **kw)
        return r, url, throwaway


def _error_code(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@contextmanager
def _matrix(district: District, db_url: str) -> Iterator[Matrix]:
    """An API one minute after NOW, with a fault alert open in OWN and in OTHER (points of our own,
    deleted afterwards), a verification run of YEAR for each, the district's application form of
    FORM_YEAR naming both (so every role's view of the form has rows to filter), and OWN's display page
    turned on."""
    api = make_api(district, db_url, now=LATER)
    api.keys["garbage"] = GARBAGE_KEY
    api.keys["garbage_token"] = GARBAGE_TOKEN  # sent as a bearer token (and as the form's secret)
    with api.ctx.db.session() as s:  # a community of no district (one since removed from the inventory)
        api.keys["manager_none"] = create_key(s, Role.MANAGER, [MISSING], "none", "test", LATER)[1]
    t_ns = int(LATER.timestamp() * NS) - NS
    try:
        m = Matrix(api, {c.id for _, c in district.site.communities()})
        for cid in (OWN, OTHER):
            community = next(c for _, c in district.site.communities() if c.id == cid)
            device = next(d for _, d in community.devices() if d.id == DEVICE)
            profile = find_profile(device.profile)
            tags = {"district": DISTRICT, "community": cid, "kind": str(profile.kind), "device": DEVICE,
                    "collector": COLLECTOR, "profile": profile.ref}  # fmt: skip
            district.store.write([Point(str(profile.kind), tags, {"fault_code": 7}, t_ns)])
            alerts = api.get(f"/communities/{cid}/alerts")
            assert alerts.status_code == 200, alerts.text
            m.alert_ids[cid] = next(
                a["id"] for a in alerts.json() if a["kind"] == "pump_fault" and a["device"] == DEVICE
            )
            run = api.post(f"/communities/{cid}/verifications/{YEAR}")
            assert run.status_code == 201, run.text
        form = api.post(
            f"/districts/{DISTRICT}/forms/{FORM_YEAR}", content=FORM, headers={"Content-Type": XLSX}
        )
        assert form.status_code == 200, form.text
        display = api.client.put(
            f"/communities/{OWN}/display", json={"enabled": True}, headers=api.headers("admin")
        )
        assert display.status_code == 200, display.text
        m.display_token = display.json()["path"].rsplit("/", 1)[1]
        yield m
    finally:
        district.store.execute(f"DELETE FROM rainwater_system WHERE collector = '{COLLECTOR}'")
        api.client.close()
        api.ctx.db.close()


def test_authorization_matrix(district: District, db_url: str) -> None:
    api_routes, _ = app_routes(create_app(_bare_context()))
    assert sorted(api_routes ^ set(ROWS)) == [], "the matrix and the app's routes differ"
    failures: list[str] = []
    count = 0
    with _matrix(district, db_url) as m:
        # the documentation answers without a key
        for path in sorted(DOC_ROUTES):
            r = m.api.get(path, who=None)
            count += 1
            if r.status_code != 200:
                failures.append(f"GET {path} [no key]: expected 200, got {r.status_code}")
        for (method, path), row in ROWS.items():
            for cell in cells(row.scope):
                want = expected(row, cell)
                r, url, throwaway = m.request(method, path, row, cell)
                count += 1
                got: Expect = (r.status_code, _error_code(r) if r.status_code >= 400 else None)
                where = f"{method} {url} [{cell.label}]"
                if got != want:
                    failures.append(f"{where}: expected {want}, got {got}: {r.text[:200]}")
                    continue
                if throwaway:  # a refused revocation leaves the key working; a done one kills it
                    me = m.api.client.get("/me", headers={"X-API-Key": throwaway}).status_code
                    if me != (401 if want[0] == row.ok else 200):
                        failures.append(f"{where}: the throwaway key then answers /me with {me}")
                if want[1] is not None:
                    continue
                if row.content_type and not r.headers.get("content-type", "").startswith(row.content_type):
                    failures.append(f"{where}: content-type {r.headers.get('content-type')}")
                elif row.check is not None and (problem := row.check(m, cell, r)) is not None:
                    failures.append(f"{where}: {problem}")
    print(f"{count} requests, {len(failures)} mismatches")
    for f in failures:
        print(f)
    assert not failures, f"{len(failures)} authorization mismatches:\n" + "\n".join(failures)
