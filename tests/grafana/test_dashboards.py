"""The provisioned dashboards and alert rules: every query runs against a real influxd holding a
backfilled year (with the variables and time range substituted as Grafana would) and returns rows, and
the JSON holds what Grafana needs to load it."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from itertools import combinations
from typing import Any

import pytest
import yaml

from grafana import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, PROVISIONING
from grafana.dashboards import DASHBOARDS, RULES, rendered
from store.lineprotocol import Point
from tests.grafana.conftest import COLLECTOR_ID, Year
from tests.grafana.interpolate import GLOBALS, TimeRange, interpolate, time_range, variables_used

DASHBOARD_FILES = sorted((PROVISIONING / "dashboards" / "json").glob("*.json"))
CJK = re.compile(r"[\u4e00-\u9fff]")
#: Panels that show something other than a query's result.
QUERYLESS = {"alertlist", "text", "row"}
#: The panel types Grafana 11 ships with that these dashboards use.
KNOWN_TYPES = {"gauge", "stat", "timeseries", "barchart", "bargauge", "table", "state-timeline", "alertlist"}


def _load(path: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _dashboards() -> list[dict[str, Any]]:
    return [_load(p) for p in DASHBOARD_FILES]


def _query_targets() -> Iterator[Any]:
    for d in _dashboards():
        for panel in d["panels"]:
            for t in panel["targets"]:
                if "query" in t:
                    yield pytest.param(d, panel, t, id=f"{d['uid']}:{panel['title']}:{t['refId']}")


# -- the files ---------------------------------------------------------------------------------------------
def test_committed_files_are_what_the_generator_writes() -> None:
    for path, text in rendered():
        assert path.exists(), f"{path} missing: run python -m grafana.dashboards"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python -m grafana.dashboards"
    assert {p.stem for p in DASHBOARD_FILES} == set(DASHBOARDS)


def test_provisioning_files_agree_on_datasource_and_folder() -> None:
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "jieshui.yaml").read_text())["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "jieshui.yaml").read_text())["providers"]
    assert provider["folderUid"] == FOLDER_UID
    assert provider["folder"] == FOLDER_TITLE
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards/json"
    alerting = yaml.safe_load((PROVISIONING / "alerting" / "jieshui.yaml").read_text())
    assert {g["folder"] for g in alerting["groups"]} == {FOLDER_TITLE}


# -- what Grafana needs ------------------------------------------------------------------------------------
def test_dashboard_uids_titles_and_time_settings() -> None:
    dashboards = _dashboards()
    uids = [d["uid"] for d in dashboards]
    assert len(set(uids)) == len(uids) == 3
    assert all(len(u) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", u) for u in uids)  # Grafana's uid rule
    assert {d["title"] for d in dashboards} == {"物业·水箱", "评估·节水成效", "运维·采集"}
    for d in dashboards:
        assert d["id"] is None  # provisioning and the HTTP API assign ids
        assert d["timezone"] == "Asia/Shanghai"
        assert isinstance(d["schemaVersion"], int)
        assert d["schemaVersion"] >= 36
        time_range(d["time"]["from"], d["time"]["to"], dt.datetime.now(dt.UTC))  # parses


@pytest.mark.parametrize("dashboard", _dashboards(), ids=lambda d: d["uid"])
def test_panels_fit_the_grid_and_name_themselves_in_both_languages(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), "panel ids repeat"
    for p in panels:
        pos = p["gridPos"]
        assert min(pos["w"], pos["h"]) > 0, p["title"]
        assert min(pos["x"], pos["y"]) >= 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, f"{p['title']} reaches past column 24"
        assert p["type"] in KNOWN_TYPES, p["type"]
        assert CJK.search(p["title"]), f"{p['title']}: the title is zh-CN"
        assert re.match(r"[A-Z][A-Za-z -]+", p["description"]), f"{p['title']}: the description opens in en"
        assert p["datasource"]["uid"] == DATASOURCE_UID
    for a, b in combinations(panels, 2):
        pa, pb = a["gridPos"], b["gridPos"]
        apart = (pa["x"] + pa["w"] <= pb["x"] or pb["x"] + pb["w"] <= pa["x"]
                 or pa["y"] + pa["h"] <= pb["y"] or pb["y"] + pb["h"] <= pa["y"])  # fmt: skip
        assert apart, f"{a['title']} overlaps {b['title']}"


@pytest.mark.parametrize("dashboard", _dashboards(), ids=lambda d: d["uid"])
def test_targets_and_variables_resolve(dashboard: dict[str, Any]) -> None:
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables[-3:] == ["district", "community", "device"]
    for i, v in enumerate(dashboard["templating"]["list"]):
        assert v["datasource"]["uid"] == DATASOURCE_UID
        # a variable's query may use only the variables before it (Grafana resolves them in order)
        assert variables_used(v["query"]) <= set(variables[:i]), v["name"]
    for p in dashboard["panels"]:
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), p["title"]
        if p["type"] not in QUERYLESS:
            assert p["targets"], f"{p['title']} has no query"
        for t in p["targets"]:
            if "query" in t:
                assert t["datasource"]["uid"] == DATASOURCE_UID, p["title"]
                assert t["rawQuery"] is True
                unknown = variables_used(t["query"]) - set(variables) - GLOBALS
                assert not unknown, f"{p['title']} uses undefined variables {unknown}"
            else:  # a server-side expression: it may only name the panel's other queries
                assert t["datasource"]["uid"] == "__expr__"
                named = set(re.findall(r"\$([A-Z])\b", t["expression"]))
                assert named, p["title"]
                assert named <= set(refs) - {t["refId"]}, p["title"]
                assert all(u.get("hide") for u in p["targets"] if u["refId"] in named), p["title"]
        for step in p.get("transformations", []):
            if step["id"] == "groupBy":  # the columns it groups must be ones the table queries name
                names = {"Time"} | {
                    m for t in p["targets"] for m in re.findall(r'AS "(\w+)"', t.get("query", ""))
                }
                assert set(step["options"]["fields"]) <= names, p["title"]


# -- against a backfilled year ---------------------------------------------------------------------------
def _values(year: Year, dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """The variables as a user would set them: district changning, the community the live collector
    also ran, every device and collector ("All"), each list taken from the variable's own query."""
    chosen: dict[str, list[str]] = {}
    wanted = {"district": ["changning"], "community": [year.live_community]}
    for v in dashboard["templating"]["list"]:
        rng = TimeRange(year.now - dt.timedelta(days=1), year.now)
        found = year.store.query(interpolate(v["query"], rng, chosen))
        options = [str(value) for s in found for value in s.columns["value"]]
        assert options, f"variable {v['name']} of {dashboard['uid']} has no values"
        if v["name"] in wanted:
            assert set(wanted[v["name"]]) <= set(options), (v["name"], options)
            chosen[v["name"]] = wanted[v["name"]]
        else:
            chosen[v["name"]] = sorted(options)
    return chosen


def _panel_range(year: Year, dashboard: dict[str, Any], panel: dict[str, Any]) -> TimeRange:
    override = panel.get("timeFrom")
    if override:  # "now/d": the whole of today, as Grafana's relative time override shows it
        return time_range(override, override, year.now)
    return time_range(dashboard["time"]["from"], dashboard["time"]["to"], year.now)


def _rows(year: Year, query: str) -> int:
    return sum(len(s) for s in year.store.query(query))


@pytest.mark.parametrize(("dashboard", "panel", "target"), list(_query_targets()))
def test_every_panel_query_returns_rows(
    year: Year, dashboard: dict[str, Any], panel: dict[str, Any], target: dict[str, Any]
) -> None:
    query = interpolate(target["query"], _panel_range(year, dashboard, panel), _values(year, dashboard))
    assert _rows(year, query) > 0, f"panel {panel['title']!r} ({dashboard['title']}): no rows for\n{query}"


def test_variables_list_the_inventory(year: Year) -> None:
    manager = _load(PROVISIONING / "dashboards" / "json" / "manager.json")
    values = _values(year, manager)
    # the inventory's devices of that community, and those the live collector's inventory added
    devices = {
        d.id
        for site in (year.site, year.live_site)
        for _, d in site.community(year.live_community)[1].devices()
    }
    assert values["device"] == sorted(devices)
    assert "rw-controller-b" in devices
    assert values["district"] == ["changning"]
    operations = _load(PROVISIONING / "dashboards" / "json" / "operations.json")
    assert COLLECTOR_ID in _values(year, operations)["collector"]


def test_expression_inputs_carry_the_same_labels(year: Year) -> None:
    """Grafana joins the series of a math expression by their labels: a tank's level and its capacity
    must come back tagged alike, or "stored volume" and "days of supply" show nothing."""
    manager = _load(PROVISIONING / "dashboards" / "json" / "manager.json")
    values = _values(year, manager)
    checked = 0
    for panel in manager["panels"]:
        inputs = [t for t in panel["targets"] if t.get("hide")]
        if not inputs:
            continue
        rng = _panel_range(year, manager, panel)
        label_sets = []
        for t in inputs:
            series = year.store.query(interpolate(t["query"], rng, values))
            label_sets.append({tuple(sorted(s.tags.items())) for s in series})
        assert label_sets[0], panel["title"]
        assert all(ls == label_sets[0] for ls in label_sets), (panel["title"], label_sets)
        checked += 1
    assert checked == 2


def _rules() -> list[dict[str, Any]]:
    alerting = yaml.safe_load((PROVISIONING / "alerting" / "jieshui.yaml").read_text(encoding="utf-8"))
    return [rule for group in alerting["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    rules = _rules()
    uids = [r["uid"] for r in rules]
    assert len(set(uids)) == len(uids) == len(RULES)
    assert {"jieshui-tank-overflow", "jieshui-tank-dry", "jieshui-device-silent"} <= set(uids)
    for r in rules:
        refs = {d["refId"]: d for d in r["data"]}
        assert r["condition"] in refs
        query = refs["A"]
        assert query["datasourceUid"] == DATASOURCE_UID
        assert query["relativeTimeRange"]["from"] > 0
        assert refs["B"]["model"]["expression"] == "A"
        assert refs["C"]["model"]["expression"] == "B"
        assert CJK.search(r["title"])
        assert CJK.search(r["annotations"]["summary"])
        assert re.match(r"[A-Z]", r["annotations"]["description"])
        assert r["noDataState"] in {"OK", "NoData", "Alerting"}
        assert r["execErrState"] in {
            "Error",
            "Alerting",
            "OK",
        }
        assert variables_used(query["model"]["query"]) <= {"timeFilter"}  # no dashboard variables in alerts


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["uid"])
def test_every_alert_query_returns_rows(year: Year, rule: dict[str, Any]) -> None:
    query = rule["data"][0]
    now = dt.datetime.now(dt.UTC)
    rng = TimeRange(now - dt.timedelta(seconds=query["relativeTimeRange"]["from"]), now)
    text = interpolate(query["model"]["query"], rng, {})
    assert _rows(year, text) > 0, f"alert {rule['title']!r}: no rows for\n{text}"


def test_overflow_rule_names_the_tank_above_its_threshold(year: Year) -> None:
    """One series per device, so the alert says which tank: a tank written at 97 % is above the
    threshold the rule states, the backfilled ones are read alongside with their own labels."""
    rule = next(r for r in _rules() if r["uid"] == "jieshui-tank-overflow")
    tags = {
        "district": "changning",
        "community": "alert-test",
        "device": "tank-x",
        "kind": "rainwater_system",
    }
    now = dt.datetime.now(dt.UTC)
    year.store.write([Point("rainwater_system", tags, {"level_pct": 97.0}, int(now.timestamp()) * 10**9)])
    rng = TimeRange(now - dt.timedelta(seconds=rule["data"][0]["relativeTimeRange"]["from"]), now)
    series = year.store.query(interpolate(rule["data"][0]["model"]["query"], rng, {}))
    (threshold,) = rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"]
    firing = {s.tags["device"] for s in series if s.values("last")[-1] > threshold}
    assert "tank-x" in firing
    assert len({s.tags["community"] for s in series}) > 1
