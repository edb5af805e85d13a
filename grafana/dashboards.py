"""The three dashboards and the alert rules, as code; `python -m grafana.dashboards` writes them to
`provisioning/` (dashboards/json/*.json, alerting/jieshui.yaml), where Grafana and `jieshui grafana
push` read them. A test fails when the committed files differ from what this module generates.

Titles and panel names are zh-CN (the users' language); every description opens with the English
title and says what the panel computes. Every query is InfluxQL over the schema of docs/schema.md:
consumption is the growth of a cumulative totalizer (`non_negative_difference`, so a meter reset or
rollover costs one interval instead of a huge negative), calendar days are Asia/Shanghai
(`tz('Asia/Shanghai')`). The verification engine stays the authority for verdicts; these panels show
the same data for people to look at.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grafana import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, PROVISIONING

DS = {"type": "influxdb", "uid": DATASOURCE_UID}
EXPR = {"type": "__expr__", "uid": "__expr__"}
TZ = "tz('Asia/Shanghai')"
SCHEMA_VERSION = 39
DOCS = Path(__file__).parents[1] / "docs" / "dashboards.md"
#: The places a query is narrowed to by the dashboard's variables.
IN_DISTRICT = '"district" =~ /^$district$/'
IN_COMMUNITY = f'{IN_DISTRICT} AND "community" =~ /^$community$/'
IN_DEVICE = f'{IN_COMMUNITY} AND "device" =~ /^$device$/'
BY_DEVICE = '"community", "device"'
ALIAS_DEVICE = "$tag_community/$tag_device"

Json = dict[str, Any]


# -- queries ------------------------------------------------------------------------------------------
def increments(
    measurement: str, field_name: str, where: str, by: str = BY_DEVICE, every: str = "1d", alias: str = ""
) -> str:
    """Consumption per `every` from a cumulative totalizer (each bucket's last reading minus the
    previous bucket's), per `by`."""
    tz = f" {TZ}" if every.endswith("d") else ""
    name = f' AS "{alias}"' if alias else ""
    return (
        f'SELECT non_negative_difference(last("{field_name}")){name} FROM "{measurement}" '
        f"WHERE $timeFilter AND {where} GROUP BY time({every}), {by} fill(none){tz}"
    )


def daily_total(measurement: str, field_name: str, where: str, alias: str, by: str = "") -> str:
    """The sum over devices of each local day's consumption (`alias`), per `by` when given."""
    inner = increments(measurement, field_name, where, f'{by + ", " if by else ""}"device"', alias="d")
    group = f"time(1d){', ' + by if by else ''}"
    return f'SELECT sum("d") AS "{alias}" FROM ({inner}) WHERE $timeFilter GROUP BY {group} fill(none) {TZ}'


def period_total(
    measurement: str, field_name: str, where: str, alias: str, by: str, every: str = "10m"
) -> str:
    """Consumption over the whole time range per `by`: the sum of the increments per `every` (the
    growth within the first bucket is not counted: a finer bucket costs more, a year takes days)."""
    inner = (
        f'SELECT non_negative_difference(last("{field_name}")) AS "d" FROM "{measurement}" '
        f'WHERE $timeFilter AND {where} GROUP BY time({every}), {by}, "device" fill(none)'
    )
    return f'SELECT sum("d") AS "{alias}" FROM ({inner}) WHERE $timeFilter GROUP BY {by}'


def latest(measurement: str, field_name: str, where: str, alias: str = "", time_filter: bool = True) -> str:
    """The last value per device."""
    name = f' AS "{alias}"' if alias else ""
    when = "$timeFilter AND " if time_filter else ""
    return f'SELECT last("{field_name}"){name} FROM "{measurement}" WHERE {when}{where} GROUP BY {BY_DEVICE}'


# -- building blocks ------------------------------------------------------------------------------------
def target(ref: str, query: str, alias: str = "", fmt: str = "time_series", hide: bool = False) -> Json:
    t: Json = {"refId": ref, "datasource": DS, "query": query, "rawQuery": True, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    if hide:
        t["hide"] = True
    return t


def math(ref: str, expression: str) -> Json:
    """A Grafana server-side expression over other queries of the panel (series joined by labels)."""
    return {"refId": ref, "datasource": EXPR, "type": "math", "expression": expression}


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


@dataclass
class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new row."""

    x: int = 0
    y: int = 0
    row_h: int = 0
    next_id: int = 1

    def place(self, w: int, h: int) -> Json:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos


@dataclass
class Board:
    uid: str
    title: str
    description: str
    tags: list[str]
    time_from: str
    time_to: str = "now"
    refresh: str = "1m"
    variables: list[Json] = field(default_factory=list)
    panels: list[Json] = field(default_factory=list)
    layout: Layout = field(default_factory=Layout)

    def panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: list[Json],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "",
        limits: tuple[float, float] | None = None,
        decimals: int | None = None,
        steps: Json | None = None,
        options: Json | None = None,
        custom: Json | None = None,
        transformations: list[Json] | None = None,
        time_from: str | None = None,
        overrides: list[Json] | None = None,
    ) -> None:
        defaults: Json = {}
        if unit:
            defaults["unit"] = unit
        if limits is not None:
            defaults["min"], defaults["max"] = limits
        if decimals is not None:
            defaults["decimals"] = decimals
        if steps is not None:
            defaults["thresholds"] = steps
        if custom is not None:
            defaults["custom"] = custom
        p: Json = {
            "id": self.layout.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "gridPos": self.layout.place(w, h),
            "datasource": DS,
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
        }
        if transformations:
            p["transformations"] = transformations
        if time_from:
            p["timeFrom"] = time_from
            p["hideTimeOverride"] = False
        self.layout.next_id += 1
        self.panels.append(p)

    def model(self) -> Json:
        return {
            "id": None,
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["jieshui", *self.tags],
            "timezone": "Asia/Shanghai",
            "weekStart": "monday",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": self.time_to},
            "refresh": self.refresh,
            "fiscalYearStartMonth": 0,
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [
                {"title": "节水 Jieshui", "type": "dashboards", "tags": ["jieshui"], "asDropdown": True}
            ],
            "panels": self.panels,
        }


def variable(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 1,
        "multi": multi,
        "includeAll": include_all,
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
    }


def place_variables(*, community_multi: bool = True) -> list[Json]:
    """district -> community -> device, from `device_info` (every device of the inventory)."""
    return [
        variable("district", "区 District", 'SHOW TAG VALUES FROM "device_info" WITH KEY = "district"'),
        variable(
            "community",
            "小区 Community",
            f'SHOW TAG VALUES FROM "device_info" WITH KEY = "community" WHERE {IN_DISTRICT}',
            multi=community_multi,
            include_all=community_multi,
        ),
        variable(
            "device",
            "设备 Device",
            f'SHOW TAG VALUES FROM "device_info" WITH KEY = "device" WHERE {IN_COMMUNITY}',
        ),
    ]


BARS: Json = {"drawStyle": "bars", "fillOpacity": 60, "lineWidth": 1, "barAlignment": 0}
LINES: Json = {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 2, "spanNulls": False}
STEPS: Json = {"drawStyle": "line", "lineInterpolation": "stepAfter", "fillOpacity": 0, "lineWidth": 2}
STAT: Json = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "colorMode": "value",
}
TABLE: Json = {"showHeader": True, "cellHeight": "sm"}
TANK_STEPS = thresholds((None, "red"), (15, "green"), (95, "red"))


# -- 物业·水箱: property managers ------------------------------------------------------------------------
def manager() -> Json:
    b = Board(
        uid="jieshui-manager",
        title="物业·水箱",
        description="Property manager: rainwater tanks, reuse, pumps and alerts of one's communities.",
        tags=["manager", "物业"],
        time_from="now-7d",
        variables=place_variables(),
    )
    rw = "rainwater_system"
    b.panel(
        "gauge", "水箱液位",
        "Tank level (%): the last level each rainwater controller reported in the time range. Red below "
        "15 % (low) and above 95 % (overflow risk).",
        [target("A", latest(rw, "level_pct", IN_DEVICE), ALIAS_DEVICE)],
        w=8, unit="percent", limits=(0, 100), decimals=0, steps=TANK_STEPS,
        options={**STAT, "showThresholdMarkers": True},
    )  # fmt: skip
    b.panel(
        "stat", "蓄水量",
        "Stored volume (m³): last level x the tank capacity from the inventory (device_info).",
        [
            target("A", latest(rw, "level_pct", IN_DEVICE), hide=True),
            target("B", latest("device_info", "tank_capacity_m3", IN_DEVICE, time_filter=False), hide=True),
            math("C", "$A * $B / 100"),
        ],
        w=8, unit="m3", decimals=1, options=STAT,
    )  # fmt: skip
    supply_7d = (
        'SELECT sum("d") FROM (SELECT non_negative_difference("supply_m3") AS "d" FROM "rainwater_system" '
        f"WHERE time > ${{__to}}ms - 7d AND time <= ${{__to}}ms AND {IN_DEVICE} GROUP BY {BY_DEVICE}) GROUP BY {BY_DEVICE}"
    )
    b.panel(
        "stat", "可用天数",
        "Days of supply: stored volume / the average daily reuse of the 7 days before the end of the time "
        "range (how long the tank lasts without rain at the recent demand).",
        [
            target("A", latest(rw, "level_pct", IN_DEVICE), hide=True),
            target("B", latest("device_info", "tank_capacity_m3", IN_DEVICE, time_filter=False), hide=True),
            target("D", supply_7d, hide=True),
            math("E", "($A * $B / 100) / ($D / 7)"),
        ],
        w=8, unit="d", decimals=1, steps=thresholds((None, "red"), (1, "orange"), (3, "green")), options=STAT,
    )  # fmt: skip
    for title, period, en in (("今日回用量", "now/d", "today"), ("本月回用量", "now/M", "this month")):
        b.panel(
            "stat", title,
            f"Reuse {en} (m³): growth of the reuse supply totalizers since local midnight"
            f"{' of the 1st' if period == 'now/M' else ''} (Asia/Shanghai), per community.",
            [target("A", period_total(rw, "supply_m3", IN_DEVICE, "reuse_m3", '"community"'), "$tag_community")],
            w=6, h=5, unit="m3", decimals=1, options=STAT, time_from=period,
        )  # fmt: skip
    b.panel(
        "alertlist", "告警",
        "Alerts: the Jieshui alert rules firing now (overflow risk, dry tank, silent device, collector).",
        [], w=12, h=5,
        options={"viewMode": "list", "groupMode": "default", "showInactiveAlerts": False, "maxItems": 20,
                 "sortOrder": 1, "dashboardAlerts": False, "alertName": "", "alertInstanceLabelFilter": "",
                 "folder": {"uid": FOLDER_UID, "title": FOLDER_TITLE},
                 "stateFilter": {"firing": True, "pending": True, "noData": True, "error": True, "normal": False}},
    )  # fmt: skip
    b.panel(
        "timeseries", "液位趋势",
        "Tank level over time (%), mean per interval, per controller.",
        [target("A", f'SELECT mean("level_pct") FROM "{rw}" WHERE $timeFilter AND {IN_DEVICE} '
                     f"GROUP BY time($__interval), {BY_DEVICE} fill(null)", ALIAS_DEVICE)],
        w=24, unit="percent", steps=TANK_STEPS, custom={**LINES, "thresholdsStyle": {"mode": "line"}},
    )  # fmt: skip
    b.panel(
        "timeseries", "进水、弃流与溢流",
        "Inflow, first flush diverted and overflow (m³ per interval): growth of each totalizer.",
        [
            target("A", increments(rw, "inflow_m3", IN_DEVICE, every="$__interval"), "进水 inflow " + ALIAS_DEVICE),
            target("B", increments(rw, "first_flush_m3", IN_DEVICE, every="$__interval"),
                   "弃流 first flush " + ALIAS_DEVICE),
            target("C", increments(rw, "overflow_m3", IN_DEVICE, every="$__interval"),
                   "溢流 overflow " + ALIAS_DEVICE),
        ],
        unit="m3", custom=BARS,
    )  # fmt: skip
    b.panel(
        "timeseries", "回用供水与补水",
        "Reuse supply and mains make-up (m³ per interval): what the tank served, and what the mains had "
        "to add when it ran short.",
        [
            target("A", increments(rw, "supply_m3", IN_DEVICE, every="$__interval"), "回用 reuse " + ALIAS_DEVICE),
            target("B", increments(rw, "makeup_m3", IN_DEVICE, every="$__interval"), "补水 make-up " + ALIAS_DEVICE),
        ],
        unit="m3", custom=BARS,
    )  # fmt: skip
    b.panel(
        "state-timeline", "水泵运行状态",
        "Pump status: the reuse pump of each rainwater controller and each river-water pump (running or "
        "not, last state per interval).",
        [
            target("A", f'SELECT last("pump_running") FROM "{rw}" WHERE $timeFilter AND {IN_DEVICE} '
                         f"GROUP BY time($__interval), {BY_DEVICE} fill(previous)", "回用泵 " + ALIAS_DEVICE),
            target("B", f'SELECT last("running") FROM "river_pump" WHERE $timeFilter AND {IN_DEVICE} '
                         f"GROUP BY time($__interval), {BY_DEVICE} fill(previous)", "河水泵 " + ALIAS_DEVICE),
        ],
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )  # fmt: skip
    b.panel(
        "timeseries", "处理设备流量",
        "Treatment flow (m³/h): the treatment unit's instantaneous flow, mean per interval.",
        [target("A", f'SELECT mean("treatment_flow_m3h") FROM "{rw}" WHERE $timeFilter AND {IN_DEVICE} '
                     f"GROUP BY time($__interval), {BY_DEVICE} fill(null)", ALIAS_DEVICE)],
        unit="m3/h", custom=LINES,
    )  # fmt: skip
    b.panel(
        "timeseries", "河道取水量（逐日）",
        "River water pumped per local day (m³), per pump.",
        [target("A", increments("river_pump", "volume_m3", IN_DEVICE), ALIAS_DEVICE)],
        unit="m3", custom=BARS,
    )  # fmt: skip
    b.panel(
        "table", "设备故障码",
        "Fault codes: the last fault code of each controller and pump (0: no fault; the code's meaning "
        "is in the device's manual, docs/devices.md).",
        [
            target("A", latest(rw, "fault_code", IN_DEVICE, "fault_code"), fmt="table"),
            target("B", latest("river_pump", "fault_code", IN_DEVICE, "fault_code"), fmt="table"),
        ],
        transformations=[{"id": "merge", "options": {}}], options=TABLE,
    )  # fmt: skip
    return b.model()


# -- 评估·节水成效: evaluators ----------------------------------------------------------------------------
def _measured_vs_claim(
    b: Board, title: str, en: str, measurement: str, field_name: str, measure: str
) -> None:
    claim_where = f'{IN_COMMUNITY} AND "measure" =~ /^{measure}$/'
    daily = increments(measurement, field_name, IN_COMMUNITY, '"device"', alias="d")
    cum_measured = (
        f'SELECT cumulative_sum(sum("d")) FROM ({daily}) WHERE $timeFilter GROUP BY time(1d) fill(none) {TZ}'
    )

    cum_claim = (
        f'SELECT cumulative_sum(sum("claimed_month_m3")) FROM "claim" WHERE $timeFilter AND {claim_where} '
        f"GROUP BY time(1d) fill(none) {TZ}"
    )
    b.panel(
        "timeseries", f"累计实测{title}与声明",
        f"Cumulative measured {en} against the claim (m³): the running total of the metered daily "
        "figure, and the claim pro rata per month (claim measurement). Below the claim line: the "
        "claim is not being met so far.",
        [target("A", cum_measured, "实测 measured"), target("B", cum_claim, "声明 claimed")],
        unit="m3", custom=STEPS,
    )  # fmt: skip
    monthly_measured = daily_total(measurement, field_name, IN_COMMUNITY, "measured_m3")
    monthly_claim = (
        f'SELECT sum("claimed_month_m3") AS "claimed_m3" FROM "claim" WHERE $timeFilter AND {claim_where} '
        f"GROUP BY time(1d) fill(none) {TZ}"
    )
    agg = {"operation": "aggregate", "aggregations": ["sum"], "config": {}}
    b.panel(
        "barchart", f"月度实测{title}与声明",
        f"Monthly measured {en} against the claim (m³): daily figures summed per calendar month "
        "(Asia/Shanghai) beside the month's share of the claim.",
        [target("A", monthly_measured, fmt="table"), target("B", monthly_claim, fmt="table")],
        unit="m3",
        transformations=[
            {"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY-MM", "useTimezone": True}},
            {"id": "groupBy", "options": {"fields": {"Time": {"operation": "groupby", "aggregations": []},
                                                     "measured_m3": agg, "claimed_m3": agg}}},
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"renameByName": {"Time": "月份 month",
                                                            "measured_m3 (sum)": "实测 measured",
                                                            "claimed_m3 (sum)": "声明 claimed"}}},
        ],
        options={"xField": "月份 month", "orientation": "vertical", "groupWidth": 0.7, "barWidth": 0.9,
                 "showValue": "auto", "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
    )  # fmt: skip


def evaluator() -> Json:
    b = Board(
        uid="jieshui-evaluator",
        title="评估·节水成效",
        description="Evaluator: measured savings against the claims, data coverage, car washing, rainfall "
        "and the district overview, for the reporting year (last calendar year by default).",
        tags=["evaluator", "评估"],
        time_from="now-1y/y",
        time_to="now-1y/y",
        refresh="",
        variables=place_variables(community_multi=False),
    )
    _measured_vs_claim(
        b, "雨水回用量", "rainwater reuse", "rainwater_system", "supply_m3", "rainwater_reuse.*"
    )
    _measured_vs_claim(b, "河道取水量", "river water", "river_pump", "volume_m3", "river_water.*")
    b.panel(
        "table", "声明一览",
        "Claims: every claim of the community in the time range, as stated (value and unit).",
        [target("A", f'SELECT last("value") AS "claimed", last("unit") AS "unit" FROM "claim" '
                     f'WHERE $timeFilter AND {IN_COMMUNITY} GROUP BY "claim", "measure", "facility"', fmt="table")],
        w=24, h=6, options=TABLE,
    )  # fmt: skip
    coverage = []
    meters = (
        ("rainwater_system", "level_pct"),
        ("river_pump", "volume_m3"),
        ("water_meter", "volume_m3"),
        ("car_wash", "wash_count"),
    )
    for ref, (measurement, field_name) in zip("ABCD", meters, strict=True):
        inner = (
            f'SELECT count("{field_name}") AS "n" FROM "{measurement}" WHERE $timeFilter AND {IN_DEVICE} '
            f'GROUP BY time(1d), "device" fill(none) {TZ}'
        )
        coverage.append(target(
            ref,
            f'SELECT count("n") * 100 / ($__range_s / 86400) AS "days_with_data_pct", sum("n") AS "readings" '
            f'FROM ({inner}) WHERE $timeFilter GROUP BY "device"',
            fmt="table",
        ))  # fmt: skip
    b.panel(
        "table", "计量数据覆盖率",
        "Coverage per meter: the share of days in the range with at least one reading (%) and the "
        "readings counted. The verification report applies the full rule (a day is valid with >= 50 % of "
        "its expected readings; >= 90 % valid days).",
        coverage, w=12, unit="percent", options=TABLE,
        transformations=[{"id": "merge", "options": {}}],
    )  # fmt: skip
    classes = ("sedan", "small", "medium", "large")
    b.panel(
        "bargauge", "各车型单车用水量",
        "Litres per car wash by vehicle class: the mean of the per-wash readings (wash_l), against the "
        "programme's quotas (GB 50015: 40/50/55/90 L) and the micro-water claim (1-1.5 L).",
        [target(ref, f'SELECT mean("wash_l") AS "{cls}" FROM "car_wash" WHERE $timeFilter AND {IN_DEVICE} '
                     f"AND \"vehicle_class\" = '{cls}'", cls)
         for ref, cls in zip("ABCD", classes, strict=True)],
        w=12, unit="litre", decimals=2, steps=thresholds((None, "green"), (3, "orange"), (40, "red")),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True},
    )  # fmt: skip
    rain = (
        'SELECT max("d") AS "rain_mm" FROM (SELECT non_negative_difference(last("rain_mm")) AS "d" '
        f'FROM "rainwater_system" WHERE $timeFilter AND {IN_COMMUNITY} GROUP BY time(1d), "device" fill(none) {TZ}) '
        f"WHERE $timeFilter GROUP BY time(1d) fill(none) {TZ}"
    )
    b.panel(
        "timeseries", "降雨与雨水供水",
        "Rainfall (mm per local day, right axis) against the rainwater reuse supply (m³ per day): "
        "supply above what the rain could give is what the verification's rainfall bound looks for.",
        [target("A", rain, "降雨 rain (mm)"),
         target("B", daily_total("rainwater_system", "supply_m3", IN_COMMUNITY, "supply_m3"), "回用 reuse (m³)")],
        w=24, unit="m3", custom=BARS,
        overrides=[{"matcher": {"id": "byRegexp", "options": "降雨.*"},
                    "properties": [{"id": "unit", "value": "lengthmm"},
                                   {"id": "custom.axisPlacement", "value": "right"},
                                   {"id": "custom.drawStyle", "value": "line"}]}],
    )  # fmt: skip
    overview = [
        target(
            "A",
            period_total("rainwater_system", "supply_m3", IN_DISTRICT, "reuse_m3", '"community"', "1d"),
            fmt="table",
        ),
        target(
            "B",
            period_total("rainwater_system", "makeup_m3", IN_DISTRICT, "makeup_m3", '"community"', "1d"),
            fmt="table",
        ),
        target(
            "C",
            period_total("river_pump", "volume_m3", IN_DISTRICT, "river_m3", '"community"', "1d"),
            fmt="table",
        ),
        target(
            "D",
            f'SELECT count("wash_l") AS "washes", mean("wash_l") AS "l_per_car" FROM "car_wash" '
            f'WHERE $timeFilter AND {IN_DISTRICT} GROUP BY "community"',
            fmt="table",
        ),
    ]
    b.panel(
        "table", "区级概览",
        "District overview: per community in the selected districts, over the time range: rainwater "
        "reuse and make-up (m³), river water (m³), car washes and litres per car.",
        overview, w=24, h=9, options=TABLE, transformations=[{"id": "merge", "options": {}}],
    )  # fmt: skip
    return b.model()


# -- 运维·采集: operators ----------------------------------------------------------------------------------
def operations() -> Json:
    collectors = variable(
        "collector", "采集器 Collector", 'SHOW TAG VALUES FROM "collector_health" WITH KEY = "collector"'
    )
    b = Board(
        uid="jieshui-operations",
        title="运维·采集",
        description="Operations: the collectors' throughput, buffer, writes to InfluxDB, dead letters and "
        "each device's last report and poll lateness.",
        tags=["operations", "运维"],
        time_from="now-6h",
        refresh="30s",
        variables=[collectors, *place_variables()],
    )
    mine = '"collector" =~ /^$collector$/'
    b.panel(
        "timeseries", "采集吞吐量",
        "Collector throughput: readings accepted per minute, Modbus polls and MQTT messages "
        "and lines InfluxDB confirmed, between successive collector_health points (a restart's reset of "
        "the in-process count is skipped).",
        [target("A", 'SELECT non_negative_derivative("accepted_modbus", 1m) AS "modbus", '
                     'non_negative_derivative("accepted_mqtt", 1m) AS "mqtt", '
                     'non_negative_derivative("points_written", 1m) AS "written" '
                     f'FROM "collector_health" WHERE $timeFilter AND {mine} GROUP BY "collector"',
                 "$tag_collector $col")],
        unit="short", custom=LINES,
    )  # fmt: skip
    b.panel(
        "timeseries", "缓冲区深度与最旧行龄",
        "Buffer depth (lines waiting for InfluxDB) and the age of the oldest line (s, right axis): a "
        "growing age means InfluxDB is not taking writes (the collector keeps everything on disk).",
        [target("A", f'SELECT max("buffer_depth") AS "depth", max("buffer_oldest_age_s") AS "oldest_age_s" '
                     f'FROM "collector_health" WHERE $timeFilter AND {mine} '
                     'GROUP BY time($__interval), "collector" fill(none)', "$tag_collector $col")],
        unit="short", custom=LINES,
        overrides=[{"matcher": {"id": "byRegexp", "options": ".*oldest_age_s"},
                    "properties": [{"id": "unit", "value": "s"}, {"id": "custom.axisPlacement", "value": "right"}]}],
    )  # fmt: skip
    b.panel(
        "timeseries", "写入延迟",
        "Write latency to InfluxDB (ms): mean and worst write between two health points.",
        [target("A", 'SELECT mean("write_latency_ms_mean") AS "mean", max("write_latency_ms_max") AS "max" '
                     f'FROM "collector_health" WHERE $timeFilter AND {mine} '
                     'GROUP BY time($__interval), "collector" fill(none)', "$tag_collector $col")],
        unit="ms", custom=LINES,
    )  # fmt: skip
    b.panel(
        "timeseries", "死信（按原因）",
        "Dead letters by reason: inputs the pipeline refused per interval (malformed JSON, schema, range, "
        "Modbus exceptions, unknown topics, InfluxDB refusals), from the dead_letter measurement.",
        [target("A", f'SELECT count("message") FROM "dead_letter" WHERE $timeFilter AND {mine} '
                     'GROUP BY time($__interval), "reason" fill(none)', "$tag_reason")],
        unit="short", custom=BARS,
    )  # fmt: skip
    b.panel(
        "table", "最近的死信",
        "Latest dead letters: what was refused, where it came from and why (message names the field "
        "and the device).",
        [target("A", 'SELECT "reason", "community", "device", "message", "topic", "raw" FROM "dead_letter" '
                     f"WHERE $timeFilter AND {mine} ORDER BY time DESC LIMIT 50", fmt="table")],
        w=24, options=TABLE,
    )  # fmt: skip
    b.panel(
        "table", "设备最后上报",
        "Device last seen: seconds since each device last answered or reported, the same in report "
        "intervals (above 5: the silent-device alert), whether its polls are failing and how many failed.",
        [target("A", 'SELECT last("last_seen_age_s") AS "last_seen_age_s", last("intervals_silent") AS '
                     '"intervals_silent", last("failing") AS "failing", last("failed_polls") AS "failed_polls" '
                     f'FROM "device_health" WHERE $timeFilter AND {mine} AND {IN_DEVICE} GROUP BY {BY_DEVICE}',
                 fmt="table")],
        options=TABLE,
        steps=thresholds((None, "green"), (5, "red")),
    )  # fmt: skip
    b.panel(
        "timeseries", "轮询延迟",
        "Poll lateness (s): how late each Modbus device's last poll started after its slot (a slow line "
        "or an overloaded collector shows here first), and how long the poll took.",
        [target("A", 'SELECT max("poll_lateness_s") AS "lateness_s", max("poll_cycle_s") AS "cycle_s" '
                     f'FROM "device_health" WHERE $timeFilter AND {mine} AND {IN_DEVICE} '
                     f"GROUP BY time($__interval), {BY_DEVICE} fill(none)", f"{ALIAS_DEVICE} $col")],
        unit="s", custom=LINES,
    )  # fmt: skip
    b.panel(
        "stat", "故障设备数",
        "Failing devices: devices whose polls are failing now, per collector.",
        [target("A", f'SELECT last("failing_devices") FROM "collector_health" WHERE $timeFilter AND {mine} '
                     'GROUP BY "collector"', "$tag_collector")],
        w=12, h=5, options=STAT, steps=thresholds((None, "green"), (1, "red")),
    )  # fmt: skip
    return b.model()


DASHBOARDS = {"manager": manager, "evaluator": evaluator, "operations": operations}


# -- alert rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    uid: str
    title: str
    query: str
    reducer: str
    op: str  # gt | lt
    threshold: float
    for_: str
    summary: str  # zh-CN
    description: str  # en
    audience: str
    window_s: int = 900
    no_data: str = "OK"


RULES = (
    Rule(
        "jieshui-tank-overflow",
        "水箱溢流风险",
        'SELECT last("level_pct") FROM "rainwater_system" WHERE $timeFilter GROUP BY "district", "community", "device"',
        "last",
        "gt",
        95,
        "5m",
        "{{ $labels.community }}/{{ $labels.device }} 水箱液位 {{ $values.B }}%，高于95%，降雨时将溢流",
        "Overflow risk: {{ $labels.community }}/{{ $labels.device }} tank at {{ $values.B }} % (above 95 %); "
        "the next rain overflows. Use the water or open the drain valve.",
        "manager",
    ),
    Rule(
        "jieshui-tank-dry",
        "水箱见底",
        'SELECT last("level_pct") FROM "rainwater_system" WHERE $timeFilter GROUP BY "district", "community", "device"',
        "last",
        "lt",
        5,
        "10m",
        "{{ $labels.community }}/{{ $labels.device }} 水箱液位 {{ $values.B }}%，低于5%，回用将改用自来水补水",
        "Dry tank: {{ $labels.community }}/{{ $labels.device }} at {{ $values.B }} % (below 5 %); reuse now "
        "draws mains make-up water.",
        "manager",
    ),
    Rule(
        "jieshui-device-silent",
        "设备失联",
        'SELECT last("intervals_silent") FROM "device_health" WHERE $timeFilter '
        'GROUP BY "district", "community", "device", "collector"',
        "last",
        "gt",
        5,
        "0s",
        "{{ $labels.community }}/{{ $labels.device }} 已 {{ $values.B }} 个上报周期无数据",
        "Silent device: {{ $labels.community }}/{{ $labels.device }} has not reported for {{ $values.B }} "
        "report intervals (collector {{ $labels.collector }}). Check power, wiring or the network.",
        "manager",
    ),
    Rule(
        "jieshui-collector-backlog",
        "采集器写入积压",
        'SELECT last("buffer_oldest_age_s") FROM "collector_health" WHERE $timeFilter GROUP BY "collector"',
        "last",
        "gt",
        300,
        "2m",
        "采集器 {{ $labels.collector }} 最旧未写入数据已 {{ $values.B }} 秒，InfluxDB 未接收写入",
        "Collector backlog: the oldest reading collector {{ $labels.collector }} holds is {{ $values.B }} s "
        "old; InfluxDB is not taking writes (nothing is lost: the buffer is on disk).",
        "operations",
    ),
    Rule(
        "jieshui-collector-silent",
        "采集器停止上报",
        'SELECT count("buffer_depth") FROM "collector_health" WHERE $timeFilter',
        "last",
        "lt",
        1,
        "0s",
        "5分钟内没有任何采集器上报健康数据",
        "Collector silent: no collector has written collector_health for 5 minutes (stopped, or cannot "
        "reach InfluxDB).",
        "operations",
        window_s=300,
        no_data="Alerting",
    ),
)


def alert_rule(rule: Rule) -> Json:
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": rule.window_s, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {"refId": "A", "query": rule.query, "rawQuery": True, "resultFormat": "time_series",
                          "intervalMs": 10000, "maxDataPoints": 43200},
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": rule.reducer,
                          "settings": {"mode": "dropNN"}, "datasource": EXPR},
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {"refId": "C", "type": "threshold", "expression": "B", "datasource": EXPR,
                          "conditions": [{"evaluator": {"type": rule.op, "params": [rule.threshold]}}]},
            },
        ],
        "noDataState": rule.no_data,
        "execErrState": "Error",
        "for": rule.for_,
        "annotations": {"summary": rule.summary, "description": rule.description},
        "labels": {"app": "jieshui", "audience": rule.audience},
        "isPaused": False,
    }  # fmt: skip


def alerting() -> Json:
    groups: dict[str, list[Json]] = {}
    for rule in RULES:
        groups.setdefault(rule.audience, []).append(alert_rule(rule))
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": f"jieshui-{audience}",
                "folder": FOLDER_TITLE,
                "interval": "1m",
                "rules": rules,
            }
            for audience, rules in groups.items()
        ],
    }


# -- files ------------------------------------------------------------------------------------------------
def rendered() -> Iterator[tuple[Path, str]]:
    """Every generated file and its text."""
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), ensure_ascii=False, indent=2) + "\n"
        yield PROVISIONING / "dashboards" / "json" / f"{name}.json", text
    header = (
        "# Generated by `python -m grafana.dashboards` from grafana/dashboards.py: edit that, not this.\n"
    )
    body = yaml.safe_dump(alerting(), allow_unicode=True, sort_keys=False, width=200)
    yield PROVISIONING / "alerting" / "jieshui.yaml", header + body
    yield DOCS, markdown()


def markdown() -> str:
    """docs/dashboards.md: every dashboard's panels and every alert rule, from the same definitions."""
    out = [
        "# Dashboards and alert rules",
        "",
        "Generated by `python -m grafana.dashboards` from `grafana/dashboards.py` (edit that, not this).",
        "Grafana loads them from `grafana/provisioning/` (docker-compose, docs/deploy.md) or receives them",
        "from `jieshui grafana push` (grafana/README.md). Every dashboard has the variables district ->",
        "community -> device (the operations dashboard also collector), listed from `device_info`; every",
        "query is InfluxQL on the schema of docs/schema.md; `tests/grafana/test_dashboards.py` runs each of",
        "them against a backfilled year and fails with the panel's title when one returns nothing.",
    ]
    for build in DASHBOARDS.values():
        d = build()
        out += ["", f"## {d['title']} (`{d['uid']}`)", "", d["description"], "",
                f"Default time range: `{d['time']['from']}` to `{d['time']['to']}`, Asia/Shanghai.", "",
                "| panel | type | what it shows |", "| --- | --- | --- |"]  # fmt: skip
        out += [f"| {p['title']} | {p['type']} | {p['description']} |" for p in d["panels"]]
    out += ["", "## Alert rules", "", "Provisioned into the folder 节水 Jieshui, evaluated every minute; one "
            "alert per device (or collector), labelled with its district, community and device.", "",
            "| rule | uid | condition | for | no data | en |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in RULES:
        op = ">" if r.op == "gt" else "<"
        out.append(
            f"| {r.title} | `{r.uid}` | {r.reducer} of `{r.query}` over {r.window_s} s {op} {r.threshold:g} "
            f"| {r.for_} | {r.no_data} | {r.description.split(':')[0]} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    for path, text in rendered():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
