"""Device profiles: every shipped profile loads; bad profiles are refused naming the culprit;
docs/devices.md is what the profiles generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.docs import render
from devices.profile import DeviceKind, load_profile_file, load_profiles, rollover_of
from jieshui.errors import ProfileError

ROOT = Path(__file__).parents[2]

GOOD: dict[str, Any] = {
    "name": "test-meter",
    "version": 1,
    "kind": "water_meter",
    "vendor": "T",
    "model": "M",
    "description": {"zh": "测试", "en": "test"},
    "quantities": [
        {"name": "volume_m3", "unit": "m3", "totalizer": True, "description": {"zh": "累计", "en": "total"}},
        {"name": "flow_m3h", "unit": "m3/h", "description": {"zh": "流量", "en": "flow"}},
    ],
    "modbus": {
        "registers": [
            {"quantity": "volume_m3", "table": "holding", "address": 0, "type": "u32", "scale": 0.001},
            {"quantity": "flow_m3h", "table": "holding", "address": 2, "type": "f32"},
        ]
    },
}


def _load(tmp_path: Path, profile: dict[str, Any]) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return load_profile_file(path)


def _bad(**edits: Any) -> dict[str, Any]:
    import copy

    profile = copy.deepcopy(GOOD)
    for path, value in edits.items():
        target: Any = profile
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return profile


def test_shipped_profiles_load_and_cover_every_kind() -> None:
    profiles = {k: p for k, p in load_profiles().items() if "@" in k}
    assert {p.kind for p in profiles.values()} == set(DeviceKind)
    assert load_profiles()["hy-rwc200"] is profiles["hy-rwc200@1"]


def test_two_vendors_carry_the_same_quantities_in_different_layouts() -> None:
    a, b = load_profiles()["hy-rwc200"], load_profiles()["lq-rhc10"]
    assert a.kind == b.kind
    assert [q.name for q in a.quantities] == [q.name for q in b.quantities]
    assert a.modbus is not None
    assert b.modbus is not None
    layout_a = {
        r.quantity: (r.table, r.address, r.type, a.modbus.order_of(r), r.scale) for r in a.modbus.registers
    }
    layout_b = {
        r.quantity: (r.table, r.address, r.type, b.modbus.order_of(r), r.scale) for r in b.modbus.registers
    }
    assert all(layout_a[q] != layout_b[q] for q in layout_a)


def test_good_profile_loads_with_derived_rollover(tmp_path: Path) -> None:
    profile = _load(tmp_path, GOOD)
    assert profile.ref == "test-meter@1"
    assert profile.modbus.order_of(profile.modbus.registers[1]) == "ABCD"
    assert rollover_of(profile.modbus.registers[0]) == 2**32


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            {"modbus__registers__1__address": 1},
            "modbus.registers.1 (flow_m3h): address 1 overlaps modbus.registers.0",
        ),
        ({"modbus__registers__1__type": "bool"}, "type bool cannot sit in the holding table"),
        ({"modbus__registers__1__table": "coil"}, "type f32 cannot sit in the coil table"),
        ({"modbus__registers__1__order": "CDBA"}, "byte order 'CDBA' does not fit f32"),
        ({"modbus__registers__1__quantity": "pressure"}, "unknown quantity 'pressure'"),
        ({"modbus__registers__1__rollover": 100}, "rollover is only for totalizers"),
        ({"modbus__registers__0__scale": 0}, "scale must not be 0"),
        ({"modbus__registers__1__address": 65535}, "runs past address 65535"),
        (
            {"modbus__registers": [GOOD["modbus"]["registers"][0]]},
            "quantity 'flow_m3h' is neither in the register map nor in the payload",
        ),
        ({"quantities__1__name": "volume_m3"}, "quantities: a name is listed twice"),
        ({"quantities__1__min": 5, "quantities__1__max": 1}, "min 5.0 must be below max 1.0"),
        ({"modbus": None}, "a profile needs a modbus map, an mqtt schema, or both"),
        (
            {"kind": "toaster"},
            "kind: Input should be 'rainwater_system', 'river_pump', 'car_wash' or 'water_meter'",
        ),
        ({"modbus__registers__0__type": "u24"}, "modbus.registers.0.type: Input should be"),
        (
            {"modbus__byte_order": "ABDC"},
            "modbus.byte_order: Input should be 'ABCD', 'DCBA', 'BADC' or 'CDAB'",
        ),
    ],
)
def test_bad_profiles_are_refused_naming_the_culprit(
    tmp_path: Path, edits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, _bad(**edits))
    assert str(info.value).startswith(f"profile {tmp_path / 'p.yaml'}: ")
    assert message in str(info.value)


def test_devices_doc_is_generated_from_the_profiles() -> None:
    doc = (ROOT / "docs" / "devices.md").read_text(encoding="utf-8")
    assert doc == render(), "docs/devices.md is stale: run `jieshui profiles docs`"
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "profiles", "docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for profile in (p for k, p in load_profiles().items() if "@" in k):
        assert f"## {profile.ref}:" in doc
        for q in profile.quantities:
            assert f"| `{q.name}` |" in doc


def test_stale_doc_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "devices.md"
    stale.write_text("# old\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "profiles", "docs", "--check", "--out", str(stale)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "is stale: run `jieshui profiles docs`" in result.stderr
