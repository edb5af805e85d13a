"""`jieshui grafana push` against a recording HTTP server that answers like Grafana's HTTP API.

Grafana cannot run on this machine, so `FakeGrafana` is a real HTTP server on 127.0.0.1 (a thread) with
an in-memory store keyed by uid: 404 for an unknown uid, 401 for a wrong bearer token, 409/412 where
Grafana refuses duplicates, and failures injected per method+path. Every request is recorded (method,
path, headers, JSON body) so the tests assert what the command really sent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from grafana import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, PROVISIONING
from grafana.push import (
    AlertRule,
    Dashboard,
    ProvisioningError,
    RuleGroup,
    dashboard_body,
    datasource_body,
    load_datasources,
    load_provisioning,
    parse_duration_s,
    placeholder_values,
    plan,
    push,
    rule_body,
    rule_group_body,
    substitute,
)
from jieshui.cli import main

ROOT = Path(__file__).parents[2]
TOKEN = "glsa_jieshui_test_0123456789"
INFLUX_URL, INFLUX_DB, INFLUX_TOKEN = "http://influx.example:8086", "jieshui_t", "s3cr3t-token"
VARIABLES = placeholder_values(INFLUX_URL, INFLUX_DB, INFLUX_TOKEN)
RULES = "/api/v1/provisioning/alert-rules"
GROUP = "水箱 tank alerts"


# --- the fake Grafana ----------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str  # percent-decoded
    headers: dict[str, str]  # lower-case names
    body: Any


class FakeGrafana:
    """Grafana's folder, datasource, dashboard and alerting provisioning endpoints, in memory."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[Recorded] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], int] = {}  # (folder uid, group) -> interval
        self.fail: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self._ids = 0

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        path = unquote(raw_path)
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Invalid API key", "messageId": "api-keys.invalid"}
            if (method, path) in self.fail:
                return self.fail[(method, path)]
            return self._route(method, raw_path, headers, body)

    def _route(self, method: str, raw: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        seg = [unquote(s) for s in raw.strip("/").split("/")]
        match (method, seg):
            case ("GET", ["api", "folders", uid]):
                return (
                    (200, self.folders[uid])
                    if uid in self.folders
                    else (404, {"message": "folder not found"})
                )
            case ("POST", ["api", "folders"]):
                if body["uid"] in self.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                self.folders[body["uid"]] = {
                    "id": self._id(),
                    "uid": body["uid"],
                    "title": body["title"],
                    "version": 1,
                }
                return 200, self.folders[body["uid"]]
            case ("PUT", ["api", "folders", uid]):
                if uid not in self.folders:
                    return 404, {"message": "folder not found"}
                if not body.get("overwrite") and body.get("version") != self.folders[uid]["version"]:
                    return 412, {"message": "the folder has been changed by someone else"}
                folder = self.folders[uid]
                folder.update(title=body["title"], version=folder["version"] + 1)
                return 200, folder
            case ("GET", ["api", "datasources", "uid", uid]):
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                ds = dict(self.datasources[uid])
                ds["secureJsonFields"] = dict.fromkeys(ds.pop("secureJsonData", {}), True)
                return 200, ds
            case ("POST", ["api", "datasources"]):
                if any(d["name"] == body["name"] for d in self.datasources.values()):
                    return 409, {"message": "data source with the same name already exists"}
                if body["uid"] in self.datasources:
                    return 409, {"message": "data source with the same uid already exists"}
                self.datasources[body["uid"]] = {**body, "id": self._id()}
                return 200, {
                    "datasource": body,
                    "id": self.datasources[body["uid"]]["id"],
                    "message": "Datasource added",
                    "name": body["name"],
                }
            case ("PUT", ["api", "datasources", "uid", uid]):
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {
                    "datasource": body,
                    "id": self.datasources[uid]["id"],
                    "message": "Datasource updated",
                    "name": body["name"],
                }
            case ("POST", ["api", "dashboards", "db"]):
                dash, folder = body["dashboard"], body.get("folderUid")
                if folder not in self.folders:
                    return 400, {"message": "folder not found"}
                old = self.dashboards.get(dash["uid"])
                if old is not None and not body.get("overwrite"):
                    return 412, {
                        "status": "name-exists",
                        "message": "A dashboard with the same uid already exists",
                    }
                version = 1 if old is None else old["version"] + 1
                ident = self._id() if old is None else old["id"]
                self.dashboards[dash["uid"]] = {
                    "dashboard": dash,
                    "folderUid": folder,
                    "version": version,
                    "id": ident,
                }
                return 200, {
                    "id": ident,
                    "uid": dash["uid"],
                    "url": f"/d/{dash['uid']}/x",
                    "status": "success",
                    "version": version,
                    "slug": "x",
                }
            case ("GET", ["api", "v1", "provisioning", "alert-rules", uid]):
                return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "rule not found"})
            case ("POST", ["api", "v1", "provisioning", "alert-rules"]):
                if body["uid"] in self.rules:
                    return 409, {"message": "a rule with the same uid already exists"}
                if body.get("folderUID") not in self.folders:
                    return 400, {"message": "folder does not exist"}
                self.rules[body["uid"]] = self._provenance({**body, "id": self._id()}, headers)
                self.groups.setdefault((body["folderUID"], body["ruleGroup"]), 60)
                return 201, self.rules[body["uid"]]
            case ("PUT", ["api", "v1", "provisioning", "alert-rules", uid]):
                if uid not in self.rules:
                    return 404, {"message": "rule not found"}
                self.rules[uid] = self._provenance({**body, "id": self.rules[uid]["id"]}, headers)
                return 200, self.rules[uid]
            case ("PUT", ["api", "v1", "provisioning", "folder", folder, "rule-groups", group]):
                if folder not in self.folders:
                    return 400, {"message": "folder does not exist"}
                if (
                    not isinstance(body.get("interval"), int)
                    or body["interval"] <= 0
                    or body["interval"] % 10
                ):
                    return 400, {"message": "invalid interval: must be a positive multiple of 10 s"}
                # Grafana 9.4+ replaces the group: rules it does not list are deleted.
                listed = {r["uid"] for r in body["rules"]}
                for uid in [
                    u for u, r in self.rules.items() if (r["folderUID"], r["ruleGroup"]) == (folder, group)
                ]:
                    if uid not in listed:
                        del self.rules[uid]
                for rule in body["rules"]:
                    ident = self.rules[rule["uid"]]["id"] if rule["uid"] in self.rules else self._id()
                    self.rules[rule["uid"]] = self._provenance({**rule, "id": ident}, headers)
                self.groups[(folder, group)] = body["interval"]
                return 200, body
        return 404, {"message": "Not found"}

    @staticmethod
    def _provenance(rule: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        return {**rule, "provenance": "" if "x-disable-provenance" in headers else "api"}

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.server.app.handle(self.command, self.path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    app: FakeGrafana


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    """A fake Grafana on a free port of 127.0.0.1 and its base URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.app = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.app, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- a small provisioning directory --------------------------------------------------------------

DATASOURCE_YAML = """\
# Grafana expands ${VAR} from its environment; this comment must stay untouched.
apiVersion: 1
datasources:
  - name: Jieshui InfluxDB (InfluxQL)
    uid: jieshui-influxql
    type: influxdb
    access: proxy
    url: ${JIESHUI_INFLUX_URL}
    isDefault: true
    editable: false
    jsonData:
      version: InfluxQL
      dbName: ${JIESHUI_INFLUX_DATABASE}
      httpMode: POST
      httpHeaderName1: Authorization
    secureJsonData:
      httpHeaderValue1: Token ${JIESHUI_INFLUX_TOKEN}
"""

ALERTING_YAML = f"""\
apiVersion: 1
groups:
  - orgId: 1
    name: {GROUP}
    folder: {FOLDER_TITLE}
    interval: 1m
    rules:
      - uid: tank-overflow
        title: Tank above 95 %
        condition: C
        data:
          - refId: A
            relativeTimeRange: {{from: 600, to: 0}}
            datasourceUid: jieshui-influxql
            model: {{refId: A, rawQuery: true, query: 'SELECT last("level_pct") FROM "tank" GROUP BY "device"'}}
          - refId: C
            relativeTimeRange: {{from: 0, to: 0}}
            datasourceUid: __expr__
            model: {{refId: C, type: threshold, expression: A, conditions: [{{evaluator: {{type: gt, params: [95]}}}}]}}
        noDataState: NoData
        execErrState: Error
        for: 5m
        annotations: {{summary: "{{{{ $labels.device }}}} is nearly full"}}
        labels: {{severity: warning}}
        isPaused: false
        dashboardUid: jieshui-operator
        panelId: 3
      - uid: tank-dry
        title: Tank empty for a day
        condition: B
        data:
          - refId: B
            relativeTimeRange: {{from: 86400, to: 0}}
            datasourceUid: jieshui-influxql
            model: {{refId: B, rawQuery: true, query: 'SELECT max("level_pct") FROM "tank"'}}
"""


def _dashboard(uid: str, title: str, ident: int | None) -> str:
    return json.dumps({"id": ident, "uid": uid, "title": title, "schemaVersion": 39, "panels": []})


@pytest.fixture
def prov_dir(tmp_path: Path) -> Path:
    """A provisioning directory: one datasource, two dashboards, one group of two alert rules."""
    root = tmp_path / "provisioning"
    (root / "datasources").mkdir(parents=True)
    (root / "datasources" / "jieshui.yaml").write_text(DATASOURCE_YAML, encoding="utf-8")
    (root / "dashboards" / "json").mkdir(parents=True)
    (root / "dashboards" / "jieshui.yaml").write_text("apiVersion: 1\nproviders: []\n", encoding="utf-8")
    (root / "dashboards" / "json" / "a-manager.json").write_text(
        _dashboard("jieshui-manager", "物业 Property manager", None), encoding="utf-8"
    )
    (root / "dashboards" / "json" / "b-operator.json").write_text(
        _dashboard("jieshui-operator", "运维 Operator", 42), encoding="utf-8"
    )
    (root / "alerting").mkdir()
    (root / "alerting" / "rules.yaml").write_text(ALERTING_YAML, encoding="utf-8")
    return root


FIRST_PUSH = [
    "GET /api/folders/jieshui",
    "POST /api/folders",
    "GET /api/datasources/uid/jieshui-influxql",
    "POST /api/datasources",
    "POST /api/dashboards/db",
    "POST /api/dashboards/db",
    f"GET {RULES}/tank-overflow",
    f"POST {RULES}",
    f"GET {RULES}/tank-dry",
    f"POST {RULES}",
    f"PUT /api/v1/provisioning/folder/jieshui/rule-groups/{GROUP}",
]
SECOND_PUSH = [
    "GET /api/folders/jieshui",
    "PUT /api/folders/jieshui",
    "GET /api/datasources/uid/jieshui-influxql",
    "PUT /api/datasources/uid/jieshui-influxql",
    "POST /api/dashboards/db",
    "POST /api/dashboards/db",
    f"GET {RULES}/tank-overflow",
    f"PUT {RULES}/tank-overflow",
    f"GET {RULES}/tank-dry",
    f"PUT {RULES}/tank-dry",
    f"PUT /api/v1/provisioning/folder/jieshui/rule-groups/{GROUP}",
]


def _push_args(url: str, prov: Path, *extra: str) -> list[str]:
    return ["grafana", "push", "--url", url, "--token", TOKEN, "--provisioning", str(prov),
            "--influx-url", INFLUX_URL, "--influx-database", INFLUX_DB, "--influx-token", INFLUX_TOKEN,
            *extra]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    """The environment for the command: no JIESHUI_* of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIESHUI_")}
    return {**env, **extra}


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as operators run it: a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "jieshui.cli", *args],
        cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# --- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("30s", 30), ("1m", 60), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1500ms", None),
     ("1m0s", 60), ("", None), ("5", None), ("m", None), ("1x", None), ("-1m", None), ("1m ", None)],
)  # fmt: skip
def test_parse_duration_in_whole_seconds(text: str, seconds: int | None) -> None:
    if seconds is None:
        with pytest.raises(ValueError, match=r"duration|whole number"):
            parse_duration_s(text)
    else:
        assert parse_duration_s(text) == seconds


def test_substitute_fills_placeholders_in_strings_only() -> None:
    raw = {"url": "${A}", "n": 3, "list": ["x ${B} y", True], "${A}": "key stays"}
    assert substitute(raw, {"A": "a", "B": "b"}, "f.yaml") == {
        "url": "a", "n": 3, "list": ["x b y", True], "${A}": "key stays"
    }  # fmt: skip


def test_unknown_placeholder_names_the_file_the_path_and_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(DATASOURCE_YAML.replace("${JIESHUI_INFLUX_DATABASE}", "${INFLUX_DB}"), encoding="utf-8")
    with pytest.raises(ProvisioningError) as info:
        load_datasources(path, VARIABLES)
    assert info.value.problems == [
        f"{path}: datasources.0.jsonData.dbName: unknown placeholder ${{INFLUX_DB}} (known: "
        "${JIESHUI_INFLUX_URL}, ${JIESHUI_INFLUX_DATABASE}, ${JIESHUI_INFLUX_TOKEN})"
    ]


def test_datasource_body_is_the_api_shape_with_values_filled(prov_dir: Path) -> None:
    (ds,) = load_datasources(prov_dir / "datasources" / "jieshui.yaml", VARIABLES)
    assert datasource_body(ds) == {
        "name": "Jieshui InfluxDB (InfluxQL)", "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy",
        "url": INFLUX_URL, "user": "", "database": "", "basicAuth": False, "basicAuthUser": "",
        "withCredentials": False, "isDefault": True,
        "jsonData": {"version": "InfluxQL", "dbName": INFLUX_DB, "httpMode": "POST",
                     "httpHeaderName1": "Authorization"},
        "secureJsonData": {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"},
    }  # fmt: skip


def test_an_unset_influx_token_becomes_empty_as_grafana_makes_it(prov_dir: Path) -> None:
    (ds,) = load_datasources(
        prov_dir / "datasources" / "jieshui.yaml", placeholder_values(INFLUX_URL, INFLUX_DB, None)
    )
    assert ds.secure_json_data == {"httpHeaderValue1": "Token "}


def test_dashboard_body_overwrites_by_uid_into_the_folder() -> None:
    model = {"id": 42, "uid": "jieshui-x", "title": "X", "panels": [{"id": 1}]}
    body = dashboard_body(Dashboard(Path("x.json"), "jieshui-x", "X", model), "folder-1")
    assert body == {
        "dashboard": {"id": None, "uid": "jieshui-x", "title": "X", "panels": [{"id": 1}]},
        "folderUid": "folder-1", "overwrite": True, "message": "jieshui grafana push",
    }  # fmt: skip
    assert model["id"] == 42  # the loaded model is not changed


def _group() -> RuleGroup:
    return RuleGroup.model_validate(yaml.safe_load(ALERTING_YAML)["groups"][0])


def test_rule_body_is_the_provisioning_api_shape() -> None:
    group = _group()
    body = rule_body(group.rules[0], group, "folder-1")
    assert body == {
        "uid": "tank-overflow", "title": "Tank above 95 %", "condition": "C",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": "jieshui-influxql",
             "model": {"refId": "A", "rawQuery": True,
                       "query": 'SELECT last("level_pct") FROM "tank" GROUP BY "device"'}},
            {"refId": "C", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
             "model": {"refId": "C", "type": "threshold", "expression": "A",
                       "conditions": [{"evaluator": {"type": "gt", "params": [95]}}]}},
        ],
        "noDataState": "NoData", "execErrState": "Error", "for": "5m",
        "annotations": {"summary": "{{ $labels.device }} is nearly full", "__dashboardUid__": "jieshui-operator",
                        "__panelId__": "3"},
        "labels": {"severity": "warning"}, "isPaused": False,
        "folderUID": "folder-1", "ruleGroup": GROUP, "orgID": 1,
    }  # fmt: skip


def test_rule_defaults_follow_grafana_file_provisioning() -> None:
    group = _group()
    body = rule_body(group.rules[1], group, "f")
    assert (body["noDataState"], body["execErrState"], body["for"], body["annotations"], body["labels"]) == (
        "NoData", "Alerting", "0s", {}, {}
    )  # fmt: skip


def test_rule_group_body_has_the_interval_in_seconds_and_every_rule() -> None:
    group = _group()
    body = rule_group_body(group, "folder-1")
    assert body["title"] == GROUP
    assert body["folderUid"] == "folder-1"
    assert body["interval"] == 60
    assert body["rules"] == [rule_body(r, group, "folder-1") for r in group.rules]


def test_condition_must_be_the_refid_of_a_query() -> None:
    raw = yaml.safe_load(ALERTING_YAML)["groups"][0]["rules"][1]
    with pytest.raises(ValueError, match=r"condition 'Z' is not the refId of a query \(B\)"):
        AlertRule.model_validate({**raw, "condition": "Z"})


def test_invalid_alerting_file_lists_every_problem_with_file_and_line(prov_dir: Path) -> None:
    path = prov_dir / "alerting" / "rules.yaml"
    text = ALERTING_YAML.replace("interval: 1m", "interval: 1 minute")
    text = text.replace("execErrState: Error", "execErrSate: Error")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProvisioningError) as info:
        load_provisioning(prov_dir, VARIABLES)
    lines = text.splitlines()
    interval_line = next(i for i, s in enumerate(lines, 1) if "interval:" in s)
    typo_line = next(i for i, s in enumerate(lines, 1) if "execErrSate" in s)
    assert info.value.problems == [
        f"{path}:{interval_line}: groups.0.interval: '1 minute' is not a duration such as 30s, 5m or 1h",
        f"{path}:{typo_line}: groups.0.rules.0.execErrSate: is not a known key (misspelt?)",
    ]


def test_a_uid_used_twice_is_refused(prov_dir: Path) -> None:
    (prov_dir / "dashboards" / "json" / "c-copy.json").write_text(
        _dashboard("jieshui-manager", "copy", None), encoding="utf-8"
    )
    with pytest.raises(ProvisioningError, match="dashboard uid\\(s\\) used more than once: jieshui-manager"):
        load_provisioning(prov_dir, VARIABLES)


def test_missing_directories_hold_nothing_to_push(tmp_path: Path) -> None:
    steps = plan(load_provisioning(tmp_path, VARIABLES), FOLDER_UID, FOLDER_TITLE)
    assert [(s.kind, s.uid) for s in steps] == [("folder", FOLDER_UID)]


# --- against the fake Grafana --------------------------------------------------------------------


def test_first_push_creates_everything_in_order(
    grafana: tuple[FakeGrafana, str], prov_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    assert fake.calls() == FIRST_PUSH
    assert capsys.readouterr().out.splitlines() == [
        f'created folder jieshui "{FOLDER_TITLE}"',
        'created datasource jieshui-influxql "Jieshui InfluxDB (InfluxQL)"',
        'created dashboard jieshui-manager "物业 Property manager"',
        'created dashboard jieshui-operator "运维 Operator"',
        'created alert-rule tank-overflow "Tank above 95 %"',
        'created alert-rule tank-dry "Tank empty for a day"',
        f'updated rule-group jieshui/{GROUP} "{GROUP}"',
    ]


def test_second_push_updates_only_and_duplicates_nothing(
    grafana: tuple[FakeGrafana, str], prov_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    first = len(fake.requests)
    capsys.readouterr()
    assert main(_push_args(url, prov_dir)) == 0
    assert fake.calls()[first:] == SECOND_PUSH
    assert all(line.startswith("updated ") for line in capsys.readouterr().out.splitlines())
    assert (len(fake.folders), len(fake.datasources), len(fake.dashboards), len(fake.rules)) == (1, 1, 2, 2)
    assert [d["version"] for d in fake.dashboards.values()] == [2, 2]
    assert fake.groups == {(FOLDER_UID, GROUP): 60}


def test_every_request_carries_the_bearer_token(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    assert main(_push_args(url, prov_dir)) == 0
    assert len(fake.requests) == len(FIRST_PUSH) + len(SECOND_PUSH)
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_dashboards_go_into_the_folder_by_the_files_uid(
    grafana: tuple[FakeGrafana, str], prov_dir: Path
) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    bodies = [r.body for r in fake.requests if r.path == "/api/dashboards/db"]
    files = sorted((prov_dir / "dashboards" / "json").glob("*.json"))
    assert [b["dashboard"]["uid"] for b in bodies] == [json.loads(f.read_text())["uid"] for f in files]
    for body in bodies:
        assert body["folderUid"] == FOLDER_UID
        assert body["overwrite"] is True
        assert body["dashboard"]["id"] is None
    assert fake.folders[FOLDER_UID]["title"] == FOLDER_TITLE


def test_datasource_is_sent_with_values_substituted(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    assert main(_push_args(url, prov_dir)) == 0
    sent = [r for r in fake.requests if r.method in ("POST", "PUT") and "datasources" in r.path]
    assert [r.method for r in sent] == ["POST", "PUT"]
    for request in sent:
        assert request.body["url"] == INFLUX_URL
        assert request.body["jsonData"]["dbName"] == INFLUX_DB
        assert request.body["secureJsonData"] == {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"}
        assert "${" not in json.dumps(request.body)
        assert not {"editable", "orgId", "version"} & set(request.body)


def test_alert_rules_go_into_the_folder_and_group_without_provenance(
    grafana: tuple[FakeGrafana, str], prov_dir: Path
) -> None:
    fake, url = grafana
    assert main(_push_args(url, prov_dir)) == 0
    assert main(_push_args(url, prov_dir)) == 0
    writes = [r for r in fake.requests if r.method != "GET" and "/api/v1/provisioning/" in r.path]
    assert len(writes) == 6  # 2 rules + 1 group, twice
    for request in writes:
        assert request.headers.get("x-disable-provenance") == "true"
        rules = request.body["rules"] if "rule-groups" in request.path else [request.body]
        for rule in rules:
            assert (rule["folderUID"], rule["ruleGroup"], rule["orgID"]) == (FOLDER_UID, GROUP, 1)
    assert {uid: r["provenance"] for uid, r in fake.rules.items()} == {"tank-overflow": "", "tank-dry": ""}
    group_put = writes[2].body
    assert (group_put["title"], group_put["folderUid"], group_put["interval"]) == (GROUP, FOLDER_UID, 60)
    assert [r["uid"] for r in group_put["rules"]] == ["tank-overflow", "tank-dry"]


def test_push_function_reports_each_object(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    steps = plan(load_provisioning(prov_dir, VARIABLES), FOLDER_UID, "Other title")
    lines: list[str] = []
    outcomes = push(steps, url + "/", TOKEN, echo=lines.append)
    assert [o.action for o in outcomes] == ["created"] * 6 + ["updated"]
    assert lines == [o.line for o in outcomes]
    assert fake.calls() == FIRST_PUSH
    assert fake.folders[FOLDER_UID]["title"] == "Other title"


def test_push_under_a_sub_path(grafana: tuple[FakeGrafana, str], tmp_path: Path) -> None:
    fake, url = grafana
    fake.fail[("GET", "/grafana/api/folders/jieshui")] = (404, {"message": "folder not found"})
    fake.fail[("POST", "/grafana/api/folders")] = (200, {"uid": "jieshui"})
    steps = plan(load_provisioning(tmp_path, VARIABLES), FOLDER_UID, FOLDER_TITLE)
    push(steps, url + "/grafana", TOKEN, echo=lambda _: None)
    assert fake.calls() == ["GET /grafana/api/folders/jieshui", "POST /grafana/api/folders"]


def test_cli_process_pushes_then_updates_with_flags_over_environment(
    grafana: tuple[FakeGrafana, str], prov_dir: Path
) -> None:
    fake, url = grafana
    env = _env(
        JIESHUI_GRAFANA_TOKEN=TOKEN,
        JIESHUI_GRAFANA_URL="http://127.0.0.1:9",  # overridden by --url
        JIESHUI_INFLUX_URL="http://from-env:8086",  # overridden by --influx-url
        JIESHUI_INFLUX_DATABASE="from_env_db",  # used: no --influx-database
        JIESHUI_INFLUX_TOKEN="env-token",
    )
    args = ["grafana", "push", "--url", url, "--provisioning", str(prov_dir), "--influx-url", INFLUX_URL]
    first = _run(args, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created ") == 6
    second = _run(args, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("updated ") == 7
    assert "created" not in second.stdout
    assert fake.calls() == FIRST_PUSH + SECOND_PUSH
    assert "pushed 7 object(s)" in second.stderr
    ds = fake.datasources[DATASOURCE_UID]
    assert (ds["url"], ds["jsonData"]["dbName"]) == (INFLUX_URL, "from_env_db")
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token env-token"}


def test_wrong_token_exits_1_with_graphanas_message(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    fake.token = "another-token"
    result = _run(_push_args(url, prov_dir))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'jieshui grafana push: folder jieshui "{FOLDER_TITLE}": GET /api/folders/jieshui: Grafana answered '
        "401 Unauthorized: Invalid API key (check --token / JIESHUI_GRAFANA_TOKEN: a Grafana service-account "
        "token)"
    ]
    assert len(fake.requests) == 1


def test_refusal_names_object_method_path_status_and_message(
    grafana: tuple[FakeGrafana, str], prov_dir: Path
) -> None:
    fake, url = grafana
    fake.fail[("POST", "/api/dashboards/db")] = (
        412,
        {"message": "The dashboard has been changed by someone else"},
    )
    result = _run(_push_args(url, prov_dir))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f'created folder jieshui "{FOLDER_TITLE}"',
        'created datasource jieshui-influxql "Jieshui InfluxDB (InfluxQL)"',
    ]
    assert result.stderr == (
        'jieshui grafana push: dashboard jieshui-manager "物业 Property manager": POST /api/dashboards/db: '
        "Grafana answered 412 Precondition Failed: The dashboard has been changed by someone else\n"
    )
    assert fake.calls() == FIRST_PUSH[:5]


def test_server_error_on_a_rule_group_is_reported(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    path = f"/api/v1/provisioning/folder/jieshui/rule-groups/{GROUP}"
    fake.fail[("PUT", path)] = (500, {"message": "failed to update rule group"})
    result = _run(_push_args(url, prov_dir))
    assert result.returncode == 1
    assert (
        f'rule-group jieshui/{GROUP} "{GROUP}": PUT /api/v1/provisioning/folder/jieshui/rule-groups/'
        in result.stderr
    )
    assert "500 Internal Server Error: failed to update rule group" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_grafana_exits_1_with_a_clear_message(prov_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = _run(_push_args(f"http://127.0.0.1:{port}", prov_dir))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f'jieshui grafana push: folder jieshui "{FOLDER_TITLE}": GET /api/folders/jieshui: cannot reach '
        f"Grafana at http://127.0.0.1:{port}"
    )
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_grafana_that_does_not_answer_times_out_with_a_clear_message(prov_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        result = _run([*_push_args(f"http://127.0.0.1:{port}", prov_dir), "--timeout", "0.5"])
    assert result.returncode == 1
    assert re.fullmatch(
        rf'jieshui grafana push: folder jieshui "{FOLDER_TITLE}": GET /api/folders/jieshui: no answer from '
        rf"Grafana at http://127.0.0.1:{port} within 0.5 s \(ReadTimeout\)\n",
        result.stderr,
    ), result.stderr


def test_unknown_placeholder_exits_2_before_any_request(
    grafana: tuple[FakeGrafana, str], prov_dir: Path
) -> None:
    fake, url = grafana
    path = prov_dir / "datasources" / "jieshui.yaml"
    path.write_text(DATASOURCE_YAML.replace("${JIESHUI_INFLUX_URL}", "${INFLUX_HOST}"), encoding="utf-8")
    result = _run(_push_args(url, prov_dir))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: datasources.0.url: unknown placeholder ${{INFLUX_HOST}}")
    assert fake.requests == []


def test_missing_url_or_token_exits_2(prov_dir: Path) -> None:
    result = _run(["grafana", "push", "--provisioning", str(prov_dir)])
    assert result.returncode == 2
    assert result.stderr == (
        "jieshui grafana push: --url (or JIESHUI_GRAFANA_URL) and --token (or JIESHUI_GRAFANA_TOKEN) required\n"
    )


def test_dry_run_sends_nothing(grafana: tuple[FakeGrafana, str], prov_dir: Path) -> None:
    fake, url = grafana
    result = _run([*_push_args(url, prov_dir), "--dry-run"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(FIRST_PUSH) - 4  # one line per object: the probes are not objects
    assert lines[0] == (
        f'would push folder jieshui "{FOLDER_TITLE}": GET /api/folders/jieshui, then POST /api/folders (absent) '
        "or PUT /api/folders/jieshui (present)"
    )
    assert lines[2] == 'would push dashboard jieshui-manager "物业 Property manager": POST /api/dashboards/db'
    assert INFLUX_TOKEN not in result.stdout + result.stderr
    assert fake.requests == []


def test_the_real_provisioning_sends_one_request_per_object_found(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    dashboards = sorted((PROVISIONING / "dashboards" / "json").glob("*.json"))
    datasources = [
        entry
        for path in sorted((PROVISIONING / "datasources").glob("*.yaml"))
        for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources", [])
    ]
    groups = [
        group
        for path in sorted((PROVISIONING / "alerting").glob("*.y*ml"))
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", [])
    ]
    rules = [rule["uid"] for group in groups for rule in group["rules"]]
    assert main(["grafana", "push", "--url", url, "--token", TOKEN, "--influx-url", INFLUX_URL,
                 "--influx-database", INFLUX_DB, "--influx-token", INFLUX_TOKEN]) == 0  # fmt: skip
    calls = fake.calls()
    assert calls[:2] == ["GET /api/folders/jieshui", "POST /api/folders"]
    ds_posts = [c for c in calls if c.startswith("POST /api/datasources")]
    assert ds_posts == ["POST /api/datasources"] * len(datasources)
    posted = [r.body["dashboard"]["uid"] for r in fake.requests if r.path == "/api/dashboards/db"]
    assert posted == [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in dashboards]
    assert [c for c in calls if c.startswith(f"POST {RULES}")] == [f"POST {RULES}"] * len(rules)
    assert [c.removeprefix(f"GET {RULES}/") for c in calls if c.startswith(f"GET {RULES}/")] == rules
    assert len([c for c in calls if "/rule-groups/" in c]) == len(groups)
    assert len(calls) == 2 + 2 * len(datasources) + len(dashboards) + 2 * len(rules) + len(groups)
    # Dashboards may use Grafana's own ${...} variables (${__to}); only the datasource has placeholders.
    for request in fake.requests:
        if "/api/datasources" in request.path and request.body is not None:
            assert "${" not in json.dumps(request.body)
    assert set(fake.dashboards) == {json.loads(p.read_text(encoding="utf-8"))["uid"] for p in dashboards}


def test_importing_the_push_module_does_not_load_grafana_client_or_niquests() -> None:
    code = (
        "import sys, grafana.push\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'niquests', 'grafana_client', 'urllib3_future', 'qh3'})\n"
        "print(bad, 'httpx' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] True"
