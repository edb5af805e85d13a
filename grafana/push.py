"""`jieshui grafana push`: upload the provisioning under grafana/provisioning to a running Grafana.

The files Grafana reads at start (the InfluxQL datasource, the dashboards, the alert rule groups) are
loaded and validated here, turned into the bodies of Grafana's HTTP API, and sent by uid into one folder,
so a second push updates what the first one created and never duplicates it. Loading, validating,
placeholder substitution and the request plan are pure functions; only `push` talks to Grafana.

Grafana's HTTP API is spoken with httpx (already a dependency), not with grafana-client: grafana-client
pulls in niquests, whose urllib3-future shadows `urllib3` through a .pth file for the whole virtualenv,
after which influxdb-client (which the collector and the store need) fails (ARCHITECTURE.md, pitfalls).
The handful of endpoints below do not justify that risk.

Endpoints, in the order they are called (Grafana's documented HTTP API, Grafana 9.4 and later):
folder `GET /api/folders/{uid}` then `POST /api/folders` or `PUT /api/folders/{uid}`; datasource
`GET /api/datasources/uid/{uid}` then `POST /api/datasources` or `PUT /api/datasources/uid/{uid}`;
dashboards `POST /api/dashboards/db` (create-or-update by uid, `overwrite`); alert rules
`GET /api/v1/provisioning/alert-rules/{uid}` then `POST /api/v1/provisioning/alert-rules` or
`PUT /api/v1/provisioning/alert-rules/{uid}`, and per group
`PUT /api/v1/provisioning/folder/{folderUid}/rule-groups/{group}`.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jieshui.errors import JieshuiError

#: The placeholders the datasource file may use (Grafana expands them from its environment).
PLACEHOLDERS = ("JIESHUI_INFLUX_URL", "JIESHUI_INFLUX_DATABASE", "JIESHUI_INFLUX_TOKEN")
#: Recorded by Grafana in each dashboard's version history.
VERSION_MESSAGE = "jieshui grafana push"
#: Sent with alert rules and rule groups: without it Grafana marks them provisioned ("api") and the UI
#: refuses to edit them; operators tune thresholds in the UI, the next push restores the files' values.
DISABLE_PROVENANCE = {"X-Disable-Provenance": "true"}
#: Grafana limits uids (folders, dashboards, alert rules, datasources) to 40 characters.
MAX_UID_LENGTH = 40

_M = TypeVar("_M", bound=BaseModel)
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"0|(?:\d+(?:ms|s|m|h|d|w))+")
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ProvisioningError(JieshuiError):
    """A provisioning file is invalid or cannot be read; `problems` has one `FILE:LINE: path: message` each.

    The command exits 2: the files (or the values for their placeholders) must be fixed.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class GrafanaError(JieshuiError):
    """Grafana refused or failed a request, or could not be reached; the message names the object."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


# --- the provisioning files ----------------------------------------------------------------------


class _FileModel(BaseModel):
    # Refuse unknown keys: a misspelt key in a provisioning file would otherwise be dropped silently.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Datasource(_FileModel):
    """One entry of a datasource provisioning file (`datasources:`), placeholders already substituted."""

    name: str = Field(min_length=1)
    uid: str = Field(min_length=1, max_length=MAX_UID_LENGTH)
    type: str = Field(min_length=1)
    access: Literal["proxy", "direct"] = "proxy"
    url: str = ""
    user: str = ""
    database: str = ""
    basic_auth: bool = Field(default=False, alias="basicAuth")
    basic_auth_user: str = Field(default="", alias="basicAuthUser")
    with_credentials: bool = Field(default=False, alias="withCredentials")
    is_default: bool = Field(default=False, alias="isDefault")
    json_data: dict[str, Any] = Field(default_factory=dict, alias="jsonData")
    secure_json_data: dict[str, str] = Field(default_factory=dict, alias="secureJsonData")
    # Keys only Grafana's file provisioner reads; the HTTP API has no such fields, so they are not sent.
    org_id: int = Field(default=1, alias="orgId")
    version: int | None = None
    editable: bool = False


class DatasourceFile(_FileModel):
    """A datasource provisioning file: `apiVersion: 1` and a `datasources:` list."""

    api_version: Literal[1] = Field(alias="apiVersion")
    datasources: list[Datasource] = Field(default_factory=list)


class RelativeTimeRange(_FileModel):
    """The window a query reads, in seconds before the evaluation (`from` 600, `to` 0: the last 10 min)."""

    from_s: int = Field(alias="from", ge=0)
    to_s: int = Field(alias="to", ge=0)

    @field_validator("from_s", "to_s", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return parse_duration_s(value) if isinstance(value, str) else value


class AlertQuery(_FileModel):
    """One query or expression of an alert rule (`data:`)."""

    ref_id: str = Field(alias="refId", min_length=1)
    relative_time_range: RelativeTimeRange | None = Field(default=None, alias="relativeTimeRange")
    datasource_uid: str = Field(alias="datasourceUid", min_length=1)
    query_type: str = Field(default="", alias="queryType")
    model: dict[str, Any]


NoDataState = Literal["OK", "NoData", "Alerting", "KeepLast"]
ExecErrState = Literal["OK", "Error", "Alerting", "KeepLast"]


class AlertRule(_FileModel):
    """One rule of an alerting provisioning file, in Grafana's file format."""

    uid: str = Field(min_length=1, max_length=MAX_UID_LENGTH)
    title: str = Field(min_length=1)
    condition: str = Field(min_length=1)
    data: list[AlertQuery] = Field(min_length=1)
    no_data_state: NoDataState = Field(default="NoData", alias="noDataState")
    exec_err_state: ExecErrState = Field(default="Alerting", alias="execErrState")
    for_: str = Field(default="0s", alias="for")
    keep_firing_for: str | None = Field(default=None, alias="keepFiringFor")
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    is_paused: bool = Field(default=False, alias="isPaused")
    dashboard_uid: str | None = Field(default=None, alias="dashboardUid")
    panel_id: int | None = Field(default=None, alias="panelId")
    notification_settings: dict[str, Any] | None = None

    @field_validator("for_", "keep_firing_for")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration_s(value)
        return value

    @model_validator(mode="after")
    def _condition_names_a_query(self) -> AlertRule:
        refs = [q.ref_id for q in self.data]
        if self.condition not in refs:
            raise ValueError(f"condition {self.condition!r} is not the refId of a query ({', '.join(refs)})")
        return self


class RuleGroup(_FileModel):
    """A rule group: its rules are evaluated together every `interval`."""

    org_id: int = Field(default=1, alias="orgId")
    name: str = Field(min_length=1)
    # The folder by title in Grafana's file format; a push puts every group into its one folder instead.
    folder: str = ""
    interval_s: int = Field(alias="interval", gt=0)
    # At least one: Grafana replaces a group with the rules sent, so an empty group would delete its rules.
    rules: list[AlertRule] = Field(min_length=1)

    @field_validator("interval_s", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return parse_duration_s(value) if isinstance(value, str) else value


class AlertingFile(_FileModel):
    """An alerting provisioning file: `apiVersion: 1` and its rule `groups:`."""

    api_version: Literal[1] = Field(alias="apiVersion")
    groups: list[RuleGroup] = Field(default_factory=list)


@dataclass(frozen=True)
class Dashboard:
    """A dashboard JSON model and the file it came from."""

    path: Path
    uid: str
    title: str
    model: dict[str, Any]


@dataclass(frozen=True)
class Provisioning:
    """Everything one push sends, validated."""

    datasources: list[Datasource] = field(default_factory=list)
    dashboards: list[Dashboard] = field(default_factory=list)
    groups: list[RuleGroup] = field(default_factory=list)


def parse_duration_s(text: object) -> int:
    """Whole seconds in a Go/Prometheus duration (`30s`, `1m`, `1h30m`, `0s`); ValueError otherwise."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 1h")
    parts = _DURATION_PART.findall(text)
    total_ms = sum(int(n) if unit == "ms" else int(n) * _DURATION_S[unit] * 1000 for n, unit in parts)
    if total_ms % 1000:
        raise ValueError(f"{text!r} is not a whole number of seconds")
    return total_ms // 1000


def placeholder_values(influx_url: str, influx_database: str, influx_token: str | None) -> dict[str, str]:
    """The values of the datasource file's placeholders; an unset token becomes "", as in Grafana."""
    return dict(zip(PLACEHOLDERS, (influx_url, influx_database, influx_token or ""), strict=True))


def substitute(value: Any, variables: Mapping[str, str], where: str, path: tuple[str | int, ...] = ()) -> Any:
    """`value` with every `${NAME}` in its strings replaced from `variables`, recursively.

    Only parsed string values are touched (never comments or keys), so a value with YAML's special
    characters cannot change the file's structure. An unknown NAME raises ProvisioningError naming
    `where` (the file), the dotted path and the variable.
    """
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                known = ", ".join(f"${{{k}}}" for k in variables)
                dotted = ".".join(map(str, path)) or "(top)"
                problem = f"{where}: {dotted}: unknown placeholder ${{{name}}} (known: {known})"
                raise ProvisioningError([problem])
            return variables[name]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {k: substitute(v, variables, where, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables, where, (*path, i)) for i, v in enumerate(value)]
    return value


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """1-based line of the deepest node of a composed YAML document found along `path`."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisioningError([f"{path}:0: cannot read: {exc}"]) from exc
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ProvisioningError([f"{path}:{line}: yaml: {getattr(exc, 'problem', None) or exc}"]) from exc


def _validate(model: type[_M], raw: Any, path: Path, node: yaml.Node | None) -> _M:
    if not isinstance(raw, dict):
        raise ProvisioningError([f"{path}:1: (top): must be a mapping with apiVersion: 1"])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            msg = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                msg = "is not a known key (misspelt?)"
            dotted = ".".join(map(str, loc)) or "(top)"
            problems.append(f"{path}:{_line_of(node, loc)}: {dotted}: {msg[:1].lower() + msg[1:]}")
        raise ProvisioningError(problems) from exc


def load_datasources(path: Path, variables: Mapping[str, str]) -> list[Datasource]:
    """Validate a datasource provisioning file with its `${NAME}` placeholders filled from `variables`."""
    raw, node = _read_yaml(path)
    return _validate(DatasourceFile, substitute(raw, variables, str(path)), path, node).datasources


def load_dashboard(path: Path) -> Dashboard:
    """A dashboard JSON model; it needs a `uid` (what makes the push idempotent) and a `title`."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisioningError([f"{path}:0: cannot read: {exc}"]) from exc
    except json.JSONDecodeError as exc:
        raise ProvisioningError([f"{path}:{exc.lineno}: json: {exc.msg}"]) from exc
    if not isinstance(model, dict):
        raise ProvisioningError([f"{path}:1: (top): a dashboard is a JSON object"])
    problems = []
    uid, title = model.get("uid"), model.get("title")
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID_LENGTH:
        problems.append(f"{path}:1: uid: needs a uid of 1 to {MAX_UID_LENGTH} characters, got {uid!r}")
    if not isinstance(title, str) or not title:
        problems.append(f"{path}:1: title: needs a title, got {title!r}")
    if problems:
        raise ProvisioningError(problems)
    return Dashboard(path=path, uid=str(uid), title=str(title), model=model)


def load_alerting(path: Path) -> list[RuleGroup]:
    """The rule groups of an alerting provisioning file."""
    raw, node = _read_yaml(path)
    return _validate(AlertingFile, raw, path, node).groups


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_provisioning(root: Path, variables: Mapping[str, str]) -> Provisioning:
    """Load every file under `root` (datasources/*.yaml, dashboards/json/*.json, alerting/*.yaml).

    Missing directories hold nothing to push. Raises ProvisioningError listing every problem found,
    including a uid used twice (the second object would silently overwrite the first in Grafana).
    """
    if not root.is_dir():
        raise ProvisioningError([f"{root}:0: not a directory of Grafana provisioning files"])
    problems: list[str] = []
    prov = Provisioning()
    for path in _yaml_files(root / "datasources"):
        try:
            prov.datasources.extend(load_datasources(path, variables))
        except ProvisioningError as exc:
            problems.extend(exc.problems)
    for path in sorted((root / "dashboards" / "json").glob("*.json")):
        try:
            prov.dashboards.append(load_dashboard(path))
        except ProvisioningError as exc:
            problems.extend(exc.problems)
    for path in _yaml_files(root / "alerting"):
        try:
            prov.groups.extend(load_alerting(path))
        except ProvisioningError as exc:
            problems.extend(exc.problems)
    for what, keys in (
        ("datasource uid", [d.uid for d in prov.datasources]),
        ("dashboard uid", [d.uid for d in prov.dashboards]),
        ("alert rule uid", [r.uid for g in prov.groups for r in g.rules]),
        ("rule group name", [g.name for g in prov.groups]),
    ):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            problems.append(f"{root}:0: {what}(s) used more than once: {', '.join(twice)}")
    if problems:
        raise ProvisioningError(problems)
    return prov


# --- API bodies (pure) ---------------------------------------------------------------------------


def datasource_body(ds: Datasource) -> dict[str, Any]:
    """The body of `POST /api/datasources` and `PUT /api/datasources/uid/{uid}` for a provisioned entry."""
    return ds.model_dump(by_alias=True, exclude={"org_id", "version", "editable"})


def dashboard_body(dashboard: Dashboard, folder_uid: str) -> dict[str, Any]:
    """The body of `POST /api/dashboards/db`: create or replace the dashboard with this uid in the folder."""
    # id null: Grafana finds the dashboard by uid; a numeric id from another Grafana would be wrong here.
    return {
        "dashboard": {**dashboard.model, "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": VERSION_MESSAGE,
    }


def rule_body(rule: AlertRule, group: RuleGroup, folder_uid: str) -> dict[str, Any]:
    """An alert rule in the provisioning API's shape (ProvisionedAlertRule), in `group` of the folder."""
    annotations = dict(rule.annotations)
    # The file format's dashboardUid/panelId link the rule to a panel; the API carries them as annotations.
    if rule.dashboard_uid is not None:
        annotations["__dashboardUid__"] = rule.dashboard_uid
    if rule.panel_id is not None:
        annotations["__panelId__"] = str(rule.panel_id)
    body: dict[str, Any] = {
        "uid": rule.uid,
        "title": rule.title,
        "condition": rule.condition,
        "data": [_query_body(query) for query in rule.data],
        "noDataState": rule.no_data_state,
        "execErrState": rule.exec_err_state,
        "for": rule.for_,
        "annotations": annotations,
        "labels": dict(rule.labels),
        "isPaused": rule.is_paused,
        "folderUID": folder_uid,
        "ruleGroup": group.name,
        "orgID": group.org_id,
    }
    if rule.keep_firing_for is not None:
        body["keepFiringFor"] = rule.keep_firing_for
    if rule.notification_settings is not None:
        body["notification_settings"] = rule.notification_settings
    return body


def _query_body(query: AlertQuery) -> dict[str, Any]:
    body = query.model_dump(by_alias=True, exclude_none=True)
    if not query.query_type:
        del body["queryType"]
    return body


def rule_group_body(group: RuleGroup, folder_uid: str) -> dict[str, Any]:
    """The body of `PUT .../folder/{folderUid}/rule-groups/{group}` (AlertRuleGroup, interval in seconds).

    Grafana (9.4+) replaces the whole group with this body and deletes the group's rules it does not
    list, so every rule of the file's group is sent again here.
    """
    return {
        "title": group.name,
        "folderUid": folder_uid,
        "interval": group.interval_s,
        "rules": [rule_body(rule, group, folder_uid) for rule in group.rules],
    }


# --- the plan (pure) and the push ----------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request to Grafana (path relative to its base URL, already quoted)."""

    method: Literal["GET", "POST", "PUT"]
    path: str
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One object to push. With `probe`: GET it, 404 -> `create`, 200 -> `update`; else `create` alone."""

    kind: str
    uid: str
    title: str
    create: Request
    probe: str | None = None
    update: Request | None = None

    @property
    def label(self) -> str:
        """How the object is named in output and errors."""
        return f'{self.kind} {self.uid} "{self.title}"'


def _q(segment: str) -> str:
    return quote(segment, safe="")


def plan(prov: Provisioning, folder_uid: str, folder_title: str) -> list[Step]:
    """The objects to push, in order: the folder, datasources, dashboards, then alert rules by group."""
    folder = f"/api/folders/{_q(folder_uid)}"
    steps = [
        Step(
            "folder", folder_uid, folder_title,
            probe=folder,
            create=Request("POST", "/api/folders", {"uid": folder_uid, "title": folder_title}),
            update=Request("PUT", folder, {"title": folder_title, "overwrite": True}),
        )
    ]  # fmt: skip
    for ds in prov.datasources:
        path = f"/api/datasources/uid/{_q(ds.uid)}"
        body = datasource_body(ds)
        steps.append(
            Step("datasource", ds.uid, ds.name, probe=path, create=Request("POST", "/api/datasources", body),
                 update=Request("PUT", path, body))
        )  # fmt: skip
    steps.extend(
        Step(
            "dashboard",
            d.uid,
            d.title,
            create=Request("POST", "/api/dashboards/db", dashboard_body(d, folder_uid)),
        )
        for d in prov.dashboards
    )
    rules = "/api/v1/provisioning/alert-rules"
    for group in prov.groups:
        for rule in group.rules:
            body = rule_body(rule, group, folder_uid)
            steps.append(
                Step("alert-rule", rule.uid, rule.title, probe=f"{rules}/{_q(rule.uid)}",
                     create=Request("POST", rules, body, DISABLE_PROVENANCE),
                     update=Request("PUT", f"{rules}/{_q(rule.uid)}", body, DISABLE_PROVENANCE))
            )  # fmt: skip
        group_path = f"/api/v1/provisioning/folder/{_q(folder_uid)}/rule-groups/{_q(group.name)}"
        group_body = rule_group_body(group, folder_uid)
        steps.append(
            Step("rule-group", f"{folder_uid}/{group.name}", group.name,
                 create=Request("PUT", group_path, group_body, DISABLE_PROVENANCE))
        )  # fmt: skip
    return steps


def describe(step: Step) -> str:
    """What pushing `step` does, for --dry-run."""
    if step.probe is None or step.update is None:
        return f"{step.label}: {step.create.method} {step.create.path}"
    return (
        f"{step.label}: GET {step.probe}, then {step.create.method} {step.create.path} (absent) "
        f"or {step.update.method} {step.update.path} (present)"
    )


@dataclass(frozen=True)
class Outcome:
    """What a push did to one object."""

    step: Step
    action: Literal["created", "updated"]

    @property
    def line(self) -> str:
        """The line printed for it."""
        return f"{self.action} {self.step.label}"


def _failure(step: Step, method: str, path: str, response: httpx.Response) -> GrafanaError:
    try:
        payload = response.json()
        detail = str(payload.get("message", "")) if isinstance(payload, dict) else ""
    except ValueError:
        detail = ""
    detail = detail or response.text.strip()[:300] or "(empty body)"
    try:
        reason = http.HTTPStatus(response.status_code).phrase
    except ValueError:
        reason = ""
    hint = {
        401: " (check --token / JIESHUI_GRAFANA_TOKEN: a Grafana service-account token)",
        403: " (the service account needs the Editor or Admin role)",
    }.get(response.status_code, "")
    return GrafanaError(
        f"{step.label}: {method} {path}: Grafana answered {response.status_code} {reason}: {detail}{hint}",
        status=response.status_code,
    )


def _send(client: httpx.Client, step: Step, request: Request) -> httpx.Response:
    try:
        return client.request(request.method, request.path, json=request.body, headers=dict(request.headers))
    except httpx.TimeoutException as exc:
        raise GrafanaError(
            f"{step.label}: {request.method} {request.path}: no answer from Grafana at {client.base_url} "
            f"within {client.timeout.read:g} s ({type(exc).__name__})"
        ) from exc
    except httpx.TransportError as exc:
        raise GrafanaError(
            f"{step.label}: {request.method} {request.path}: cannot reach Grafana at {client.base_url}: "
            f"{exc or type(exc).__name__}"
        ) from exc


def apply(client: httpx.Client, step: Step) -> Outcome:
    """Push one object; raise GrafanaError naming it, the request and Grafana's answer if refused."""
    if step.probe is not None and step.update is not None:
        response = _send(client, step, Request("GET", step.probe))
        if response.status_code not in (200, 404):
            raise _failure(step, "GET", step.probe, response)
        exists = response.status_code == 200
        request = step.update if exists else step.create
        action: Literal["created", "updated"] = "updated" if exists else "created"
    else:
        request, action = step.create, "updated"
    response = _send(client, step, request)
    if not response.is_success:
        raise _failure(step, request.method, request.path, response)
    if step.kind == "dashboard":
        # POST /api/dashboards/db answers the saved version: 1 for a dashboard that did not exist.
        action = "created" if _json_field(response, "version") == 1 else "updated"
    return Outcome(step, action)


def _json_field(response: httpx.Response, name: str) -> Any:
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def push(
    steps: Sequence[Step],
    url: str,
    token: str,
    *,
    timeout_s: float = 10.0,
    echo: Callable[[str], None] = print,
) -> list[Outcome]:
    """Send `steps` in order to the Grafana at `url` with a service-account token; echo one line per object.

    Stops at the first refusal (GrafanaError); what was pushed before it stays, and pushing again is safe.
    """
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    outcomes = []
    with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as client:
        for step in steps:
            outcome = apply(client, step)
            outcomes.append(outcome)
            echo(outcome.line)
    return outcomes
