"""Inventory loading: valid files load; every bad file is refused with FILE:LINE: path: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from jieshui.errors import InventoryError
from jieshui.inventory import FacilityKind, check_rules, load_site

EXAMPLES = Path(__file__).parents[2] / "examples"

# A minimal valid inventory; each bad case below edits it and names the exact error line expected.
BASE = """\
schema_version: 1
districts:
  - id: changning
    name: 长宁区
    communities:
      - id: xinjing-6
        name: 新泾六村
        street_town: 新泾镇
        residents_committee: 新泾六村居委会
        contact: 王丽
        phone: "021-62681234"
        postcode: "200335"
        address: 哈密路1880弄
        households: 1460
        population: 3650
        application_year: 2025
        benchmark: true
        catchments:
          - id: roofs
            surface: hard_roof
            area_m2: 3200
        facilities:
          - id: rainwater
            kind: rainwater_harvesting
            name: 雨水回用
            catchments: [roofs]
            tank_capacity_m3: 70
            rated_flow_m3h: 10
            devices:
              - id: rw-controller
                profile: hy-rwc200
                connection: {protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 1}
              - id: rw-makeup
                profile: ul-wm100
                connection: {protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 2}
          - id: car-wash
            kind: car_wash
            name: 微水洗车
            devices:
              - id: car-wash-1
                profile: wx-cw01
                connection: {protocol: mqtt}
        claims:
          - id: rainwater-daily
            facility: rainwater
            measure: rainwater_reuse_per_day
            value: 20
            unit: m3/day
            year: 2025
"""

OTHER_COMMUNITY = """\
      - id: {id}
        name: 小区{id}
        street_town: 新泾镇
        residents_committee: 居委会
        contact: 张伟
        phone: "13812345678"
        postcode: "200335"
        address: 地址
        households: 100
        population: 250
        application_year: 2025
        benchmark: {benchmark}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        load_site(path)
    prefix = f"{path}:"
    assert all(p.startswith(prefix) for p in info.value.problems), info.value.problems
    return [p.removeprefix(prefix) for p in info.value.problems]


def _edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"edit target {old!r} must occur once in BASE"
    return BASE.replace(old, new)


def test_base_inventory_is_valid(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, BASE))
    assert site.summary() == "1 district(s), 1 communities, 2 facilities, 3 devices, 1 claims"


BAD_CASES = [
    pytest.param(
        "households: 1460",
        "households: 0",
        ["14: districts.0.communities.0.households: must be > 0"],
        id="households-zero",
    ),
    pytest.param(
        "population: 3650",
        "population: -3",
        ["15: districts.0.communities.0.population: must be > 0"],
        id="population-negative",
    ),
    pytest.param(
        'postcode: "200335"',
        'postcode: "20033"',
        ["12: districts.0.communities.0.postcode: '20033' does not match the pattern ^\\d{6}$"],
        id="postcode-five-digits",
    ),
    pytest.param(
        'phone: "021-62681234"',
        'phone: "call me"',
        [
            "11: districts.0.communities.0.phone: 'call me' does not match the pattern ^(\\+?86[- ]?)?((0\\d{2,3}-?)?\\d{7,8}|1\\d{10})$"
        ],
        id="phone-format",
    ),
    pytest.param(
        "        contact: 王丽\n",
        "",
        ["6: districts.0.communities.0.contact: is required"],
        id="contact-missing",
    ),
    pytest.param(
        "households: 1460",
        "housholds: 1460",
        [
            "6: districts.0.communities.0.households: is required",
            "14: districts.0.communities.0.housholds: is not a known field (misspelt?)",
        ],
        id="misspelt-field",
    ),
    pytest.param(
        "area_m2: 3200",
        "area_m2: lots",
        ["21: districts.0.communities.0.catchments.0.area_m2: must be a number"],
        id="area-not-number",
    ),
    pytest.param(
        "surface: hard_roof",
        "surface: tin_roof",
        [
            "20: districts.0.communities.0.catchments.0.surface: 'tin_roof' is not one of 'hard_roof', 'gravel_roof', 'green_roof', 'concrete_paving', 'block_paving' or 'green_space'"
        ],
        id="unknown-surface",
    ),
    pytest.param(
        "{protocol: mqtt}",
        "{protocol: zigbee}",
        [
            "42: districts.0.communities.0.facilities.1.devices.0.connection: protocol 'zigbee' is not one of 'modbus_tcp', 'modbus_rtu', 'mqtt'"
        ],
        id="unknown-protocol",
    ),
    pytest.param(
        "port: 15020, unit_id: 1}",
        "port: 70000, unit_id: 1}",
        ["32: districts.0.communities.0.facilities.0.devices.0.connection.port: must be <= 65535"],
        id="port-out-of-range",
    ),
    pytest.param(
        "profile: hy-rwc200",
        "profile: acme-9000",
        [
            "31: districts.0.communities.0.facilities.0.devices.0.profile: unknown device profile 'acme-9000'; known profiles: hs-rp55, hy-rwc200, lq-rhc10, ul-wm100, wx-cw01"
        ],
        id="unknown-profile",
    ),
    pytest.param(
        "profile: wx-cw01",
        "profile: hs-rp55",
        [
            "41: districts.0.communities.0.facilities.1.devices.0.profile: a river_pump device does not belong in a car_wash facility (allowed: car_wash, water_meter)"
        ],
        id="device-kind-not-in-facility",
    ),
    pytest.param(
        "- id: rw-makeup",
        "- id: rw-controller",
        [
            "33: districts.0.communities.0.facilities.0.devices.1.id: device id 'rw-controller' is used more than once in community 'xinjing-6'"
        ],
        id="duplicate-device-id",
    ),
    pytest.param(
        "port: 15020, unit_id: 2}",
        "port: 15020, unit_id: 1}",
        [
            "35: districts.0.communities.0.facilities.0.devices.1.connection.unit_id: Modbus address 127.0.0.1/15020/1 is already used by districts.0.communities.0.facilities.0.devices.0"
        ],
        id="duplicate-modbus-address",
    ),
    pytest.param(
        "catchments: [roofs]",
        "catchments: [roof]",
        [
            "26: districts.0.communities.0.facilities.0.catchments.0: no catchment 'roof' in community 'xinjing-6'"
        ],
        id="unknown-catchment",
    ),
    pytest.param(
        "            tank_capacity_m3: 70\n",
        "",
        [
            "23: districts.0.communities.0.facilities.0.tank_capacity_m3: a rainwater harvesting facility needs its tank capacity"
        ],
        id="tank-capacity-missing",
    ),
    pytest.param(
        "facility: rainwater",
        "facility: rain",
        ["45: districts.0.communities.0.claims.0.facility: no facility 'rain' in community 'xinjing-6'"],
        id="claim-unknown-facility",
    ),
    pytest.param(
        "facility: rainwater",
        "facility: car-wash",
        [
            "46: districts.0.communities.0.claims.0.measure: rainwater_reuse_per_day needs a rainwater_harvesting facility; 'car-wash' is car_wash"
        ],
        id="claim-wrong-facility-kind",
    ),
    pytest.param(
        "unit: m3/day",
        "unit: m3/month",
        [
            "48: districts.0.communities.0.claims.0.unit: rainwater_reuse_per_day is claimed in m3/day, not 'm3/month'"
        ],
        id="claim-wrong-unit",
    ),
    pytest.param(
        "value: 20",
        "value: -20",
        ["47: districts.0.communities.0.claims.0.value: must be > 0"],
        id="claim-negative",
    ),
    pytest.param(
        "population: 3650",
        "population: 36500",
        [
            "15: districts.0.communities.0.population: 36500 people in 1460 households is 25.0 per household, outside 1-6"
        ],
        id="people-per-household",
    ),
    pytest.param(
        "id: xinjing-6",
        "id: Xinjing 6",
        ["6: districts.0.communities.0.id: 'Xinjing 6' does not match the pattern ^[a-z0-9][a-z0-9-]*$"],
        id="id-not-slug",
    ),
    pytest.param(
        "        benchmark: true\n",
        "        benchmark: true\n        benchmark: false\n",
        ["18: districts.0.communities.0.benchmark: key appears twice in this mapping"],
        id="duplicate-key",
    ),
    pytest.param(
        "name: 雨水回用\n",
        "name: [雨水回用\n",
        ["26: yaml: expected ',' or ']', but got ':'"],
        id="yaml-syntax",
    ),
    pytest.param(
        "            rated_flow_m3h: 10\n",
        "",
        [
            "23: districts.0.communities.0.facilities.0.rated_flow_m3h: the treatment unit's rated flow is needed"
        ],
        id="rated-flow-missing",
    ),
    pytest.param(
        "profile: wx-cw01\n",
        "profile: wx-cw01\n                faults: [{kind: stuck, quantity: level_pct}]\n",
        [
            "42: districts.0.communities.0.facilities.1.devices.0.faults.0.quantity: profile wx-cw01@1 has no quantity 'level_pct'"
        ],
        id="fault-on-unknown-quantity",
    ),
    pytest.param(
        "profile: wx-cw01\n",
        "profile: wx-cw01\n                faults: [{kind: reset, quantity: wash_l}]\n",
        [
            "42: districts.0.communities.0.facilities.1.devices.0.faults.0.quantity: 'wash_l' is not a totalizer"
        ],
        id="reset-fault-on-non-totalizer",
    ),
    pytest.param(
        "profile: wx-cw01\n",
        "profile: wx-cw01\n                faults: [{kind: melt}]\n",
        [
            "42: districts.0.communities.0.facilities.1.devices.0.faults.0: kind 'melt' is not one of 'dropout', 'stuck', 'spike', 'reset', 'rollover', 'tamper', 'clock_skew', 'slow', 'exception', 'malformed', 'duplicate', 'out_of_order'"
        ],
        id="unknown-fault-kind",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD_CASES)
def test_bad_inventory_is_refused_with_line_and_path(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert _errors(tmp_path, _edit(old, new)) == expected


def _district_with(tmp_path: Path, benchmarks: list[bool]) -> list[str]:
    extra = "".join(
        OTHER_COMMUNITY.format(id=f"c{i}", benchmark=str(b).lower()) for i, b in enumerate(benchmarks)
    )
    return _errors(tmp_path, BASE + extra)  # the extra communities follow xinjing-6 in the district


def test_third_benchmark_in_a_district_year_is_refused(tmp_path: Path) -> None:
    errors = _district_with(tmp_path, [True, True])
    # xinjing-6 is the first benchmark; c1 (the third community, line 73) is the third one.
    assert errors == [
        "73: districts.0.communities.2.benchmark: district 'changning' has 3 benchmark (示范) applications "
        "in 2025; the programme allows at most 2"
    ]


def test_ninth_application_in_a_district_year_is_refused(tmp_path: Path) -> None:
    errors = _district_with(tmp_path, [False] * 8)
    assert len(errors) == 1
    assert errors[0].endswith(
        "districts.0.communities.8.id: district 'changning' has 9 applying communities in 2025; "
        "the programme allows at most 8"
    )


def test_duplicate_community_id_across_districts_is_refused(tmp_path: Path) -> None:
    second = "  - id: minhang\n    name: 闵行区\n    communities:\n" + OTHER_COMMUNITY.format(
        id="xinjing-6", benchmark="false"
    )
    assert _errors(tmp_path, BASE + second) == [
        "53: districts.1.communities.0.id: community id 'xinjing-6' is already used at districts.0.communities.0"
    ]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = _edit("households: 1460", "households: 0").replace('postcode: "200335"', 'postcode: "x"')
    errors = _errors(tmp_path, text)
    assert [e.split(":")[0] for e in errors] == ["12", "14"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_site(tmp_path / "nope.yaml")
    assert info.value.problems[0].startswith(f"{tmp_path / 'nope.yaml'}:0: file: cannot read:")


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    assert _errors(tmp_path, "") == ["1: file: an inventory is a mapping with a `districts` list"]


@pytest.mark.parametrize("name", ["community.yaml", "district.yaml"])
def test_examples_are_valid(name: str) -> None:
    site = load_site(EXAMPLES / name)
    assert check_rules(site) == []


def test_district_example_fills_the_programme_limits_exactly() -> None:
    site = load_site(EXAMPLES / "district.yaml")
    communities = [c for _, c in site.communities()]
    assert len(communities) == 8
    assert sum(c.benchmark for c in communities) == 2
    assert 1 <= sum(c.car_wash_pilot for c in communities) <= 2


def test_community_example_has_every_measure() -> None:
    _, community = load_site(EXAMPLES / "community.yaml").community("xinjing-6")
    assert {f.kind for f in community.facilities} == set(FacilityKind)
