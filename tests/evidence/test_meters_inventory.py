"""The meter registry in the site inventory: `meter:`, `past_meters:` and `replacements:` per device are
optional (every existing inventory stays valid), and every mistake in them is refused with the line, the
dotted path and what is wrong (`FILE:LINE: path: message`, as `jieshui check` prints it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence.meters import swaps_of
from jieshui.errors import InventoryError
from jieshui.inventory import load_site
from tests.jieshui.test_inventory import BASE

#: The make-up meter's connection line in BASE (line 35): the registry lines go after it.
AFTER = "                connection: {protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 2}\n"
DEVICE = "districts.0.communities.0.facilities.0.devices.1"
GOOD = (
    "                meter: {serial: UL25-1, nominal_dn: 25, accuracy_class: 2, installed_on: 2022-04-15}\n"
    "                past_meters:\n"
    "                  - {serial: UL25-0, nominal_dn: 25, installed_on: 2016-04-01,\n"
    "                     removed_at: 2022-04-15T09:00:00+08:00}\n"
    "                replacements:\n"
    "                  - {quantity: volume_m3, replaced_at: 2022-04-15T09:00:00+08:00, old_serial: UL25-0,\n"
    "                     old_final_reading: 1203.4, new_serial: UL25-1, new_first_reading: 0, recorded_by: 王丽}\n"
)


def _swap(when: str = "2022-04-15T09:00:00+08:00", old: str = "A", new: str = "B", **extra: str) -> str:
    fields = {"quantity": "volume_m3", "replaced_at": when, "old_serial": old, "old_final_reading": "1",
              "new_serial": new, "new_first_reading": "0", "recorded_by": "x", **extra}  # fmt: skip
    return "                  - {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n"


def _load(tmp_path: Path, lines: str) -> Path:
    assert BASE.count(AFTER) == 1
    path = tmp_path / "site.yaml"
    path.write_text(BASE.replace(AFTER, AFTER + lines), encoding="utf-8")
    return path


def test_an_inventory_without_meter_data_stays_valid(tmp_path: Path) -> None:
    site = load_site(_load(tmp_path, ""))
    assert all(d.meter is None and not d.replacements for _, c in site.communities() for _, d in c.devices())


def test_meter_data_and_replacements_load(tmp_path: Path) -> None:
    site = load_site(_load(tmp_path, GOOD))
    _, community = site.community("xinjing-6")
    device = next(d for _, d in community.devices() if d.id == "rw-makeup")
    assert device.meter is not None
    assert (device.meter.serial, device.meter.nominal_dn, device.meter.accuracy_class) == ("UL25-1", 25, "2")
    assert [m.serial for m in device.past_meters] == ["UL25-0"]
    (swap,) = swaps_of(device)
    assert (swap.quantity, swap.old_final, swap.new_first) == ("volume_m3", 1203.4, 0.0)
    assert swap.time_ns == 1_649_984_400 * 10**9  # 2022-04-15 01:00 UTC


BAD = [
    pytest.param(
        "                meter: {serial: M, nominal_dn: 30, installed_on: 2022-04-15}\n",
        [
            f"36: {DEVICE}.meter.nominal_dn: 30 is not one of 15, 20, 25, 32, 40, 50, 65, 80, 100, 125, 150, "
            "200, 250, 300, 400, 500, 600 or 800"
        ],
        id="size-not-a-nominal-dn",
    ),
    pytest.param(
        "                meter: {serial: M, nominal_dn: 25, accuracy_class: 3, installed_on: 2022-04-15}\n",
        [f"36: {DEVICE}.meter.accuracy_class: '3' is not one of '1' or '2'"],
        id="accuracy-class",
    ),
    pytest.param(
        "                meter: {serial: M, nominal_dn: 25, installed_on: 1999-12-31}\n",
        [f"36: {DEVICE}.meter.installed_on: must be >= 2000-01-01"],
        id="installed-before-2000",
    ),
    pytest.param(
        "                meter: {serial: M, nominal_dn: 25, installed_on: 15/04/2022}\n",
        [f"36: {DEVICE}.meter.installed_on: '15/04/2022' is not a date like 2023-04-01"],
        id="date-not-iso",
    ),
    pytest.param(
        '                meter: {serial: "M\\x01", nominal_dn: 25, installed_on: 2022-04-15}\n',
        [f"36: {DEVICE}.meter.serial: 'M\\x01' holds a control character"],
        id="serial-control-character",
    ),
    pytest.param(
        "                meter: {serial: M, nominal_dn: 25, installed_on: 2022-04-15, "
        "removed_at: 2023-01-01T00:00:00+08:00}\n",
        [
            f"36: {DEVICE}.meter.removed_at: the meter in place has no removal; list a removed one under "
            "past_meters"
        ],
        id="meter-in-place-removed",
    ),
    pytest.param(
        "                meter: {serial: A, nominal_dn: 25, installed_on: 2020-04-15}\n"
        "                past_meters:\n"
        "                  - {serial: A, nominal_dn: 25, installed_on: 2016-04-01}\n"
        "                  - {serial: B, nominal_dn: 25, installed_on: 2016-04-01, "
        "removed_at: 2015-01-01T00:00:00+08:00}\n"
        "                  - {serial: C, nominal_dn: 25, installed_on: 2018-04-01, "
        "removed_at: 2021-01-01T00:00:00+08:00}\n",
        [
            f"38: {DEVICE}.past_meters.0.serial: meter 'A' is already listed at {DEVICE}.meter",
            f"38: {DEVICE}.past_meters.0.removed_at: a past meter needs the time it was removed",
            f"39: {DEVICE}.past_meters.1.removed_at: 2015-01-01T00:00:00+08:00 is before the meter was "
            "installed (2016-04-01)",
            f"36: {DEVICE}.meter.installed_on: 2020-04-15 is before meter 'C' was removed "
            "(2021-01-01T00:00:00+08:00)",
        ],
        id="past-meters",
    ),
    pytest.param(
        "                replacements:\n" + _swap(when="2022-04-15 09:00:00"),
        [
            f"37: {DEVICE}.replacements.0.replaced_at: 2022-04-15 09:00:00 needs its UTC offset, like "
            "2025-06-10T10:00:00+08:00"
        ],
        id="replaced-at-without-offset",
    ),
    pytest.param(
        "                replacements:\n" + _swap(when="2101-04-15T09:00:00+08:00"),
        [f"37: {DEVICE}.replacements.0.replaced_at: must be within 2000-2100"],
        id="replaced-after-2100",
    ),
    pytest.param(
        "                replacements:\n" + _swap(quantity="flow_m3h"),
        [f"37: {DEVICE}.replacements.0.quantity: 'flow_m3h' is not a totalizer"],
        id="quantity-not-a-totalizer",
    ),
    pytest.param(
        "                replacements:\n" + _swap(quantity="supply_m3"),
        [
            f"37: {DEVICE}.replacements.0.quantity: profile ul-wm100@1 has no quantity 'supply_m3' (its "
            "totalizers: volume_m3)"
        ],
        id="quantity-of-another-profile",
    ),
    pytest.param(
        "                replacements:\n" + _swap(old_final_reading="-1", new_first_reading=".nan"),
        [
            f"37: {DEVICE}.replacements.0.old_final_reading: must be >= 0",
            f"37: {DEVICE}.replacements.0.new_first_reading: must be a finite number (not .inf or .nan)",
        ],
        id="readings-negative-or-nan",
    ),
    pytest.param(
        "                replacements:\n" + _swap(new="A"),
        [f"37: {DEVICE}.replacements.0.new_serial: the new meter is the old one ('A')"],
        id="same-meter",
    ),
    pytest.param(
        "                meter: {serial: C, nominal_dn: 25, installed_on: 2023-04-15}\n"
        "                replacements:\n"
        + _swap()
        + _swap(when="2023-04-15T09:00:00+08:00", old="X", new="D")
        + _swap(when="2023-04-15T01:00:00Z", old="X", new="D"),
        [
            f"40: {DEVICE}.replacements.2.replaced_at: a replacement of volume_m3 at 2023-04-15T01:00:00+00:00 "
            "is already recorded at replacements.1",
            f"39: {DEVICE}.replacements.1.old_serial: 'X' is not the meter the replacement of volume_m3 at "
            "2022-04-15T09:00:00+08:00 installed ('B')",
            f"39: {DEVICE}.replacements.1.new_serial: the last replacement of volume_m3 installed 'D', but the "
            "meter in place is 'C'",
        ],
        id="replacements-that-do-not-follow-on",
    ),
]


@pytest.mark.parametrize(("lines", "expected"), BAD)
def test_bad_meter_data_is_refused_with_line_and_path(
    tmp_path: Path, lines: str, expected: list[str]
) -> None:
    path = _load(tmp_path, lines)
    with pytest.raises(InventoryError) as info:
        load_site(path)
    assert [p.removeprefix(f"{path}:") for p in info.value.problems] == expected
