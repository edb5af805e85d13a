"""Schemathesis against the app's own OpenAPI, in process (ASGI), on the real servers of conftest.py: a
real influxd holding the backfilled district and a real SQLite database.

Every operation of the schema gets requests from schemathesis' coverage phase (boundary and invalid
values of every parameter and body field) and its fuzzing phase (MAX_EXAMPLES Hypothesis examples,
positive and negative), derandomized. Each request is authenticated, as admin, evaluator or manager:
the key is a function of the case, so a failure replays with the same key. About half the fuzzed cases
have their parameters swapped for values that exist (a community and one of its devices and
quantities, a district, a year with a verification run, an alert, a key the fuzzer may revoke, a
range of backfilled time), so requests reach the handlers' real work and not only their 404s.

Every response must be no 5xx (503 included: influxd is up) and conform to the schema: a documented
status code and content type, the documented headers, a body valid against the documented schema.

The requests actually sent are counted per operation. When the module is done, each selected operation
must have had MIN_PER_OPERATION and, when every operation was selected, all of them MIN_REQUESTS;
else the module errors at teardown.
"""

from __future__ import annotations

import datetime as dt
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
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

from api.app import create_app
from api.auth import Role, create_key
from api.deps import ApiContext
from devices.profile import find_profile
from jieshui.inventory import Site, load_site
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


#: The app under test, built at import so that schemathesis can parametrize over its operations (its
#: OpenAPI needs no context); `fuzz_api` gives it the context of the real servers while the module runs.
#: (schemathesis.pytest.from_fixture would load the schema from a fixture instead, but its lazy loader
#: breaks on pytest 9.2: it reads `Function._nodeid`, which pytest no longer has.)
APP = create_app(cast(ApiContext, None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _real(case: Case) -> st.SearchStrategy[Case]:
    """The case with every parameter and body field that names something swapped for something that
    exists (and, for series, a range of backfilled time in a window that keeps the points few)."""

    @st.composite
    def swapped(draw: st.DrawFn) -> Case:
        community, device, quantity = draw(st.sampled_from(TARGETS))
        values: dict[str, Any] = {
            "community_id": community,
            "device_id": device,
            "quantity": quantity,
            "district_id": draw(st.sampled_from(DISTRICTS)),
            "key_id": draw(st.sampled_from(SPARE_KEYS)),
            "alert_id": draw(st.sampled_from(ALERT_IDS)),
            "year": draw(st.sampled_from([YEAR, YEAR + 1, YEAR + 2])),  # 2027 is in the future: 422
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
        return case

    return swapped()


@schema.hook
def flatmap_case(ctx: HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Fuzzing: the case as generated, or with real values."""
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
    if case.path_parameters:
        case.path_parameters = {
            k: COVERED[k] if k in COVERED and k != keep else v for k, v in case.path_parameters.items()
        }
    if case.query:
        case.query = {k: COVERED[k] if k in COVERED and k != keep else v for k, v in case.query.items()}
    return case


def _who(case: Case) -> str:
    """The caller, as a function of what the case sends (stable across runs and replays)."""
    seen = repr((case.operation.label, case.path_parameters, case.query, case.headers, case.body))
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
    response = case.call(headers=fuzz_api.headers(_who(case)))
    SENT[case.operation.label] += 1
    case.validate_response(response, checks=CHECKS)
