"""Schemathesis against the app's own OpenAPI, in process (ASGI), on the real servers of conftest.py: a
real influxd holding the backfilled district and a real SQLite database.

Every operation of the schema gets requests from schemathesis' coverage phase (boundary and invalid
values of every parameter and body field) and its fuzzing phase (MAX_EXAMPLES Hypothesis examples,
positive and negative), derandomized. Each request is authenticated, as admin, evaluator or manager:
the key is a function of the case, so a failure replays with the same key. About half the fuzzed cases
have their parameters swapped for values that exist (a community and one of its devices and
quantities, a district, a year with a verification run, an alert, a key the fuzzer may revoke, a
range of backfilled time, the link of a community's display page), so requests reach the handlers' real
work and not only their 404s.

The programme's routes get the same: a real district, years with an open and a closed application
form, real communities for evaluations, a valid cycle for PUT /cycles, the forms' `form` kinds. The
form upload (a raw XLSX or CSV body) sends, in about half its fuzzed cases, a form drawn with
`programme.forms.write_form` (XLSX or CSV, with the matching `form` and `format`), half of them with one
value at or past what the database stores (a text as wide as its column or wider, a 户数 past SQL's
INTEGER, a 序号 or a count of 5000 digits); an admin's must be stored (200), or refused as invalid_form
when the database could not hold it, unless its year's applications are closed. The rest of the cases
send what schemathesis generates: text for text/csv and, for the XLSX media type, which it cannot
generate by itself, the strategy registered with `schemathesis.openapi.media_type` (damaged workbooks,
workbooks of forms breaking the rules, random bytes); each must be refused with a 4xx (but a damaged
workbook that still reads as the form it was).

Every response must be no 5xx (503 included: influxd is up) and conform to the schema: a documented
status code and content type, the documented headers, a body valid against the documented schema.

The requests actually sent are counted per operation. When the module is done, each selected operation
must have had MIN_PER_OPERATION and, when every operation was selected, all of them MIN_REQUESTS;
else the module errors at teardown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from schemathesis import Case, HookContext
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.generation.meta import CoveragePhaseData
from sqlalchemy import String

from api.app import create_app
from api.auth import Role, create_key
from api.db import Application
from api.deps import ApiContext
from devices.profile import find_profile
from jieshui.inventory import Site, load_site
from programme.cycle import default_cycle
from programme.forms import HOUSEHOLDS, POPULATION, SEQ, FormKind, FormRow, write_form
from simulators.model import SHANGHAI
from tests.api.conftest import OWN, Api, District, make_api
from tests.api.conftest import SITE as SITE_PATH

MIN_REQUESTS = 1000
MIN_PER_OPERATION = 25
#: Fuzzed examples per operation; the coverage phase's cases come on top.
MAX_EXAMPLES = 50
#: Who calls, picked by the case's hash: admin half the time, so that most requests get past the role.
WHO = ["admin", "admin", "evaluator", "manager"]
YEAR = 2025  # the year with a verification run and a decision (set up by `fuzz_api`)
#: Programme years of the forms: 2025's applications closed on 18 October 2025 (422), 2026's and
#: 2027's are open at NOW.
FORM_YEAR = 2026
FORM_YEARS = [FORM_YEAR, FORM_YEAR + 1, YEAR]  # Hypothesis favours the first
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UPLOAD = "POST /districts/{district_id}/forms/{year}"
SET_CYCLE = "PUT /cycles/{year}"
#: The app's "now": an hour after the backfill ends, when nothing reports any more, so every community
#: has open alerts (device_silent) to list and acknowledge.
NOW = dt.datetime(2026, 1, 6, 1, 0, tzinfo=SHANGHAI)

CHECKS = [
    not_a_server_error,  # any 5xx, 503 too
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # the coverage phase also sends methods the schema does not list: 405, with `Allow` naming
    # exactly the documented ones
    unsupported_method,
    allow_header_conformance,
]

#: Requests actually sent, per operation label ("GET /communities").
SENT: Counter[str] = Counter()


def _targets(site: Site) -> list[tuple[str, str, str]]:
    """(community, device, quantity): every numeric quantity of every device of the site."""
    return [
        (c.id, d.id, q.name)
        for _, c in site.communities()
        for _, d in c.devices()
        for q in find_profile(d.profile).quantities
        if q.type in ("float", "int")
    ]


SITE = load_site(SITE_PATH)
TARGETS = _targets(SITE)
DISTRICTS = [d.id for d in SITE.districts]
#: What exists only once `fuzz_api` made it: keys the fuzzer may revoke (never one it authenticates
#: with), the full texts of the keys it authenticates with (for POST /auth/token), the open alerts.
SPARE_KEYS: list[str] = []
KEY_TEXTS: list[str] = []
ALERT_IDS: list[int] = []
#: The links' secrets of the communities' display pages, all turned on by `fuzz_api` (the fuzzer may
#: replace a link or turn a page off: then that token is a 404, as documented).
DISPLAY_TOKENS: list[str] = []


# --- forms ---------------------------------------------------------------------------------------

FORM_DISTRICT = next(d for d in SITE.districts if any(c.id == OWN for c in d.communities))
#: Communities a form may list: the district's own (the registry has them) and new applicants (which
#: join the registry). Some values are valid but awkward: a formula-like start (guarded in CSV), a
#: full-width space, a mobile or a landline without area code.
FORM_NAMES = [c.name for c in FORM_DISTRICT.communities] + ["哈密新苑", "剑河家苑", "=虹桥新城", "天山　花园"]
STREETS = ["新泾镇", "仙霞新村街道", "天山路街道", "-程家桥街道"]
CONTACTS = ["王丽", "李强", "@陈刚", "Zhang Wei"]
PHONES = ["021-62681234", "62681234", "13812345678", "+86 13812345678"]
ADDRESSES = ["长宁区哈密路1880弄", "长宁区仙霞西路88号", "+长宁区天山路 600 弄 (南门)"]
#: The widths of the text columns a form is stored in: a longer text is refused, not a 500 from
#: PostgreSQL (SQLite, here, stores anything).
TEXT_WIDTHS: dict[str, int] = {
    f: cast(int, cast(String, Application.__table__.c[f].type).length)
    for f in ("street_town", "name", "residents_committee", "contact", "address")
}
#: What is stored in an SQL INTEGER (PostgreSQL's is 32-bit): a larger 户数 or 人口 is refused.
MAX_INTEGER = 2**31 - 1
#: The forms drawn so far, with the error code an admin gets in a year still open (None: stored).
DRAWN_FORMS: dict[bytes, str | None] = {}
#: What each file made here is, in words that do not change: an XLSX file carries the time it was
#: written, so its bytes differ from one run (or replay) to the next, and `_who` would too.
BODY_TOKENS: dict[bytes, str] = {}


def _token(data: bytes, token: str) -> bytes:
    BODY_TOKENS[data] = token
    return data


def _stable(body: object) -> object:
    """A body as a digest of the case should see it: a file made here as its token."""
    return BODY_TOKENS.get(body, body) if isinstance(body, bytes) else body


@st.composite
def _form_rows(draw: st.DrawFn, kind: FormKind) -> list[FormRow]:
    """Rows within the programme's rules: 1-8 applications (at most 2 benchmarks) or 1-2 pilots,
    1-6 people per household, every text valid."""
    application = kind is FormKind.APPLICATION
    n = draw(st.integers(1, 8 if application else 2))
    names = draw(st.lists(st.sampled_from(FORM_NAMES), min_size=n, max_size=n, unique=True))
    benchmarks = draw(st.sets(st.integers(0, n - 1), max_size=2)) if application else set()
    rows = []
    for i, name in enumerate(names):
        households = draw(st.integers(1, 5000))
        population = draw(st.integers(households, 6 * households))
        rows.append(
            FormRow(
                seq=i + 1,
                street_town=draw(st.sampled_from(STREETS)),
                name=name,
                benchmark=i in benchmarks,
                residents_committee=f"{name}居委",
                contact=draw(st.sampled_from(CONTACTS)),
                phone=draw(st.sampled_from(PHONES)),
                postcode=draw(st.from_regex(r"[0-9]{6}", fullmatch=True)),
                address=draw(st.sampled_from(ADDRESSES)),
                households=households if application else None,
                population=population if application else None,
            )
        )
    return rows


#: What the first row of a drawn form may have at or past what the database stores: (its fields, cells
#: written over the file, whether the form is refused). A text as wide as its column is stored, a
#: wider one refused; a 序号 no SQL integer holds is ignored (as one that is no number: the row's
#: position stands in); a 户数 or 人口 past SQL's INTEGER is refused. 5000 digits are past what int()
#: reads from text; 10**400 people per household are past a float.
EDGES: list[tuple[dict[str, str], dict[str, int | str], bool]] = [
    *(({f: "长" * (w + wider)}, {}, bool(wider)) for f, w in sorted(TEXT_WIDTHS.items()) for wider in (0, 1)),
    ({}, {SEQ: 10**20}, False),
    ({}, {SEQ: "9" * 5000}, False),
    ({}, {HOUSEHOLDS: MAX_INTEGER + 1, POPULATION: 2 * (MAX_INTEGER + 1)}, True),
    ({}, {HOUSEHOLDS: 10**20, POPULATION: 2 * 10**20}, True),
    ({}, {HOUSEHOLDS: 1, POPULATION: 10**400}, True),
    ({}, {HOUSEHOLDS: "9" * 5000, POPULATION: 1}, True),
]
#: A drawn form's slot (a digest of its case) picks its edge: half of them have one.
EDGE_SLOTS = 2 * len(EDGES)


@st.composite
def valid_form(draw: st.DrawFn, year: int, slot: int) -> tuple[FormKind, str, bytes]:
    """(form, format, the file): a form of FORM_DISTRICT for `year` within the notice's rules, its
    first row with the edge of `slot`, if any (EDGES; chosen by the case, not drawn, as Hypothesis
    favours the first choice and would seldom draw one)."""
    kind = draw(st.sampled_from(FormKind))
    fmt = draw(st.sampled_from(["xlsx", "csv"]))
    rows = draw(_form_rows(kind))
    fields, cells, refused = EDGES[slot % EDGE_SLOTS] if slot % EDGE_SLOTS < len(EDGES) else ({}, {}, False)
    if kind is FormKind.CAR_WASH_PILOT and HOUSEHOLDS in cells:
        cells, refused = {}, False  # a pilot has no households
    rows[0] = rows[0].model_copy(update=fields)
    data = _edit_first_row(write_form(rows, cast(Any, fmt), kind, FORM_DISTRICT.name, year), fmt, cells)
    DRAWN_FORMS[data] = "invalid_form" if refused else None
    return kind, fmt, _token(data, repr((kind, fmt, year, rows, cells)))


def _edit_first_row(data: bytes, fmt: str, cells: dict[str, int | str]) -> bytes:
    """The form with these cells of its first row replaced (by header)."""
    if not cells:
        return data
    if fmt == "csv":
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        for header, value in cells.items():
            table[1][table[0].index(header)] = str(value)
        text = io.StringIO(newline="")
        csv.writer(text, lineterminator="\r\n").writerows(table)
        return ("\ufeff" + text.getvalue()).encode()
    book = load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    headers = [c.value for c in sheet[2]]
    for header, value in cells.items():
        if isinstance(value, int) and value.bit_length() > 1000:
            value = str(value)  # past a float (what a number cell holds): only text holds it
        sheet.cell(row=3, column=headers.index(header) + 1, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _row(i: int, name: str, **kw: Any) -> FormRow:
    fields: dict[str, Any] = {
        "seq": i, "street_town": "新泾镇", "name": name, "residents_committee": f"{name}居委", "contact": "王丽",
        "phone": "021-62681234", "postcode": "200335", "address": f"长宁区哈密路{1000 + i}弄",
        "households": 1200, "population": 3000,
    }  # fmt: skip
    return FormRow.model_validate({**fields, **kw})


def _xlsx(rows: list[FormRow], kind: FormKind = FormKind.APPLICATION, district: str = "") -> bytes:
    return write_form(rows, "xlsx", kind, district or FORM_DISTRICT.name, FORM_YEAR)


_PILOTS = [_row(i, n, households=None, population=None) for i, n in enumerate(FORM_NAMES[:2], start=1)]
#: Valid workbooks to damage.
_WORKBOOKS = [
    _token(_xlsx([_row(1, FORM_NAMES[0]), _row(2, FORM_NAMES[-1])]), "applications"),
    _token(_xlsx(_PILOTS, FormKind.CAR_WASH_PILOT), "pilots"),
]
#: Whole workbooks of forms that break a rule: each is refused (422 invalid_form) when it is read.
_BROKEN_FORMS = [
    _xlsx([_row(1, FORM_NAMES[0], phone="12345", postcode="2003351")]),  # bad phone and postcode
    _xlsx([_row(1, FORM_NAMES[0], households=10, population=900)]),  # 90 people per household
    _xlsx([_row(i, f"小区{i}") for i in range(1, 10)]),  # nine applications
    _xlsx([_row(i, f"小区{i}", benchmark=True) for i in range(1, 4)]),  # three benchmarks
    _xlsx([_row(1, FORM_NAMES[0]), _row(2, FORM_NAMES[0])]),  # the same community twice
    _xlsx([]),  # no community
    _xlsx([_row(1, FORM_NAMES[0])], district="徐汇区"),  # another district's form
    _xlsx(
        [_row(i, f"小区{i}", households=None, population=None) for i in range(1, 4)], FormKind.CAR_WASH_PILOT
    ),
]
for _i, _form in enumerate(_BROKEN_FORMS):
    _token(_form, f"broken {_i}")
#: The damaged workbooks drawn so far: a byte changed where nothing reads it leaves a valid form.
DAMAGED: set[bytes] = set()


@st.composite
def _damaged_workbook(draw: st.DrawFn) -> bytes:
    """A valid workbook cut short, or with some bytes changed (its zip directory, a CRC, the XML...)."""
    base = draw(st.sampled_from(_WORKBOOKS))
    data = bytearray(base)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data) - 1))
        del data[cut:]
        how = f"cut at {cut}"
    else:
        flips = draw(
            st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=8)
        )
        for at, mask in flips:
            data[at] ^= mask
        how = f"flipped {flips}"
    DAMAGED.add(bytes(data))
    return _token(bytes(data), f"{BODY_TOKENS[base]} {how}")


# Schemathesis has no way to make a body of the XLSX media type (it skips such cases, with a warning);
# its documented answer is a strategy for the media type, which it then uses in every phase and mode
# (https://schemathesis.readthedocs.io/en/stable/guides/custom-media-types/).
# (Hypothesis favours the first strategy of `one_of`, and the shortest bytes of `binary`.)
schemathesis.openapi.media_type(
    XLSX, st.one_of(_damaged_workbook(), st.sampled_from(_BROKEN_FORMS), st.binary(max_size=4096))
)


#: The app under test, built at import so that schemathesis can parametrize over its operations (its
#: OpenAPI needs no context); `fuzz_api` gives it the context of the real servers while the module runs.
#: (schemathesis.pytest.from_fixture would load the schema from a fixture instead, but its lazy loader
#: breaks on pytest 9.2: it reads `Function._nodeid`, which pytest no longer has.)
APP = create_app(cast(ApiContext, None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _real(case: Case, valid_upload: int | None = None) -> st.SearchStrategy[Case]:
    """The case with every parameter and body field that names something swapped for something that
    exists (and, for series, a range of backfilled time in a window that keeps the points few; for
    PUT /cycles, a valid cycle); with `valid_upload` (a slot), the form upload's body is a drawn form, its
    `form` and `format` the form's."""

    @st.composite
    def swapped(draw: st.DrawFn) -> Case:
        label = case.operation.label
        community, device, quantity = draw(st.sampled_from(TARGETS))
        values: dict[str, Any] = {
            "community_id": community,
            "device_id": device,
            "quantity": quantity,
            "district_id": draw(st.sampled_from(DISTRICTS)),
            "key_id": draw(st.sampled_from(SPARE_KEYS)),
            "alert_id": draw(st.sampled_from(ALERT_IDS)),
            "token": draw(st.sampled_from(DISPLAY_TOKENS)),
            # 2027 is in the future: 422 for a verification; its applications are open
            "year": draw(st.sampled_from(FORM_YEARS if label == UPLOAD else [YEAR, YEAR + 1, YEAR + 2])),
            "form": draw(st.sampled_from([str(k) for k in FormKind])),
            "window": draw(st.sampled_from(["15m", "1h", "1d"])),
            "start": (NOW - dt.timedelta(hours=draw(st.integers(1, 96)))).isoformat(),
            "end": draw(st.sampled_from([NOW.isoformat(), "2026-01-05T00:00:00"])),
            # bodies: POST /keys, POST /auth/token
            "communities": [community],
            "grant_type": draw(st.sampled_from(["client_credentials", "password"])),
            "client_secret": draw(st.sampled_from(KEY_TEXTS)),
            "password": draw(st.sampled_from(KEY_TEXTS)),
        }
        if case.path_parameters:
            case.path_parameters = {k: values.get(k, v) for k, v in case.path_parameters.items()}
        if case.query:
            case.query = {k: values.get(k, v) for k, v in case.query.items()}
        if isinstance(case.body, dict):
            case.body = {k: values.get(k, v) for k, v in case.body.items()}
        year = case.path_parameters.get("year") if case.path_parameters else None
        if label == SET_CYCLE and isinstance(year, int) and isinstance(case.body, dict):
            # a valid cycle: the notice's, with a deadline in September or October of its year (so
            # the forms of FORM_YEAR stay open)
            deadline = (draw(st.sampled_from([9, 10])), draw(st.integers(1, 30)))
            case.body = default_cycle(year, deadline).model_dump(mode="json", exclude={"year"})
        if valid_upload is not None and isinstance(year, int):
            kind, fmt, case.body = draw(valid_form(year, valid_upload))
            case.query = {**(case.query or {}), "form": str(kind), "format": fmt}
            case.media_type = XLSX if fmt == "xlsx" else "text/csv"
        return case

    return swapped()


@schema.hook
def flatmap_case(ctx: HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Fuzzing: the case as generated, or with real values. A form upload is, by a digest of the case
    (Hypothesis' own choice among strategies favours the first), half the time a valid form, and
    mostly real values with the generated body the rest of the time: the path parameters' own
    invalid values are the coverage phase's."""
    if case.operation.label == UPLOAD:
        seen = repr((case.path_parameters, case.query, _stable(case.body)))
        digest = zlib.crc32(b"upload" + seen.encode("utf-8", "surrogatepass"))
        if digest % 8 < 4:
            return _real(case, valid_upload=digest // 8)
        return _real(case) if digest % 8 < 7 else st.just(case)
    return st.one_of(st.just(case), _real(case))


#: What the coverage phase's cases name, but for the parameter each case is about.
_COVERED_TARGET = next(t for t in TARGETS if t[0] == OWN)  # the manager's community: no 404 for them
COVERED = {
    "community_id": _COVERED_TARGET[0],
    "device_id": _COVERED_TARGET[1],
    "quantity": _COVERED_TARGET[2],
    "district_id": next(d.id for d in SITE.districts if any(c.id == OWN for c in d.communities)),
    "year": YEAR,
}
#: ... and per operation: the upload's body meets the form reader in a year whose forms are open.
COVERED_FOR = {UPLOAD: {"year": FORM_YEAR}}


@schema.hook
def map_case(ctx: HookContext, case: Case) -> Case:
    """Coverage: each case tries one parameter's boundary or invalid values with made-up values for the
    others, so a bad query parameter would only ever meet a 404 for the community. Real values for the
    others let it reach the handler (the coverage cases are built when pytest collects, from the site
    file alone)."""
    data = case.meta.phase.data if case.meta is not None else None
    if not isinstance(data, CoveragePhaseData):
        return case
    keep = data.parameter if data.parameter_location is not None else None
    covered = {**COVERED, **COVERED_FOR.get(case.operation.label, {})}
    if case.path_parameters:
        case.path_parameters = {
            k: covered[k] if k in covered and k != keep else v for k, v in case.path_parameters.items()
        }
    if case.query:
        case.query = {k: covered[k] if k in covered and k != keep else v for k, v in case.query.items()}
    return case


def _who(case: Case) -> str:
    """The caller, as a function of what the case sends (stable across runs and replays)."""
    seen = repr((case.operation.label, case.path_parameters, case.query, case.headers, _stable(case.body)))
    return WHO[zlib.crc32(seen.encode("utf-8", "surrogatepass")) % len(WHO)]


@pytest.fixture(scope="module")
def fuzz_api(
    district: District, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Api]:
    made = make_api(district, f"sqlite:///{tmp_path_factory.mktemp('schemathesis')}/api.sqlite3", now=NOW)
    with made.ctx.db.session() as s:
        spare = [create_key(s, Role.EVALUATOR, [], f"spare-{i}", "test", made.ctx.now())[0] for i in range(3)]
    SPARE_KEYS[:] = [k.id for k in spare]
    KEY_TEXTS[:] = made.keys.values()
    # A verification run with a decision, and open alerts (evaluated by the status), so reports,
    # decisions, verdicts and acknowledgements have something to answer with.
    assert made.post(f"/communities/{OWN}/verifications/{YEAR}").status_code == 201
    decision = made.post(f"/communities/{OWN}/verifications/{YEAR}/decisions", json={"decision": "accepted"})
    assert decision.status_code == 201
    for _, community in SITE.communities():
        assert made.get(f"/communities/{community.id}/status").status_code == 200
    ALERT_IDS[:] = [a["id"] for a in made.get("/alerts").json()]
    assert ALERT_IDS, "no open alerts to acknowledge"
    # The district's forms of FORM_YEAR (an inventory community and a new applicant) and an evaluation,
    # so form exports, evaluations and the naming list have rows whatever runs first.
    for data, form in ((_WORKBOOKS[0], "application"), (_WORKBOOKS[1], "car_wash_pilot")):
        upload = made.post(
            f"/districts/{FORM_DISTRICT.id}/forms/{FORM_YEAR}", params={"form": form}, content=data,
            headers={"Content-Type": XLSX},
        )  # fmt: skip
        assert upload.status_code == 200, upload.text
    evaluation = {"listen_done": True, "result": "not_passed"}
    put = made.client.put(
        f"/communities/{OWN}/evaluations/{YEAR}", json=evaluation, headers=made.headers("admin")
    )
    assert put.status_code == 200, put.text
    DISPLAY_TOKENS[:] = []
    for _, community in SITE.communities():
        display = made.client.put(
            f"/communities/{community.id}/display", json={"enabled": True}, headers=made.headers("admin")
        )
        assert display.status_code == 200, display.text
        DISPLAY_TOKENS.append(display.json()["path"].rsplit("/", 1)[1])
    APP.state.ctx = made.ctx
    yield made
    APP.state.ctx = None
    made.client.close()
    made.ctx.db.close()
    _check_counts(request)


def _check_counts(request: pytest.FixtureRequest) -> None:
    """MIN_PER_OPERATION for every operation that ran, MIN_REQUESTS in all when every one ran (a `-k`
    selection of a few operations checks only those)."""
    ran = [
        item.name.partition("[")[2].removesuffix("]")
        for item in request.session.items
        if item.module is sys.modules[__name__]
        and item.name.startswith(test_the_api_conforms_to_its_openapi.__name__)
    ]
    short = {op: SENT[op] for op in ran if SENT[op] < MIN_PER_OPERATION}
    assert not short, f"operations with fewer than {MIN_PER_OPERATION} requests: {short}"
    total = sum(SENT.values())
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nschemathesis: {total} requests for {len(ran)} operations")
    if len(ran) == len(list(schema.get_all_operations())):
        assert total >= MIN_REQUESTS, f"only {total} requests were sent: {dict(SENT)}"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # Generation time depends on the machine's load; the rest of the health checks are deterministic
    # here and pass.
    suppress_health_check=[HealthCheck.too_slow],
)
def test_the_api_conforms_to_its_openapi(case: Case, fuzz_api: Api) -> None:
    who = _who(case)
    response = case.call(headers=fuzz_api.headers(who))
    SENT[case.operation.label] += 1
    case.validate_response(response, checks=CHECKS)
    if case.operation.label == UPLOAD and isinstance(case.body, bytes | str):
        _check_upload(case, who, response)


def _check_upload(case: Case, who: str, response: Any) -> None:
    """A drawn form is stored (an admin's, in a year still open) unless the database could not hold
    it, and anything else is refused."""
    body = case.body.encode() if isinstance(case.body, str) else case.body
    code = response.status_code
    if body in DRAWN_FORMS:
        year = case.path_parameters["year"]
        if who != "admin":
            want: tuple[int, str | None] = (403, "forbidden_role")
        elif year < FORM_YEAR:
            want = (422, "application_closed")
        else:
            refused = DRAWN_FORMS[body]
            want = (200, None) if refused is None else (422, refused)
        got = (code, None if code == 200 else response.json()["error"]["code"])
        assert got == want, f"a {case.query} form for {year} by {who}: {got}, want {want}: {response.text}"
    elif body not in DAMAGED:  # a damaged workbook may still read as the valid form it was
        assert 400 <= code < 500, f"a generated body was answered {code}: {response.text[:500]}"
