"""Property tests of everything that reads untrusted input: whatever arrives, the MQTT decoder gives a
reading or a dead letter (with a reason and a message), register decoding gives a value or a CodecError
naming why, process_modbus a reading or a dead letter, and the inventory loader a Site or an
InventoryError whose every line is `FILE:LINE: path: message`. Nothing else is ever raised.

Derandomized and bounded: the same examples on every run, the whole file in well under a minute.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.pipeline import DeadLetter, DeviceState, Limits, Reading, process_modbus, process_mqtt
from devices.codec import CodecError
from devices.profile import Profile
from devices.registers import RegisterCodec, codecs_for
from jieshui.errors import InventoryError
from jieshui.inventory import Site, load_site
from store.lineprotocol import LineProtocolError
from tests.corpus.mqtt_profiles import NOW_NS, device, good_payload, mqtt_profiles
from tests.corpus.test_modbus_responses import good_blocks, modbus_profiles

ROOT = Path(__file__).parents[2]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _check_mqtt(profile: Profile, body: bytes) -> None:
    """The property: a reading (that encodes, or is refused as line protocol), a dead letter that
    encodes, or a duplicate; never an exception."""
    result, state = process_mqtt(device(profile), DeviceState(), body, NOW_NS, Limits(), topic="t")
    if isinstance(result, DeadLetter):
        assert result.reason
        assert result.message
        result.point("c1").to_line()
        assert state == DeviceState()
    elif isinstance(result, Reading):
        try:
            for point in result.points():
                point.to_line()
        except LineProtocolError:
            pass  # the collector turns it into an `encode` dead letter (collector/service.py)
    else:
        raise AssertionError(f"a first message cannot be a duplicate: {result!r}")


@pytest.mark.parametrize("profile", mqtt_profiles(), ids=lambda p: p.ref)
@FUZZ
@given(body=st.binary(max_size=300))
def test_any_bytes_are_a_reading_or_a_dead_letter(profile: Profile, body: bytes) -> None:
    _check_mqtt(profile, body)


@pytest.mark.parametrize("profile", mqtt_profiles(), ids=lambda p: p.ref)
@FUZZ
@given(data=st.data())
def test_any_values_under_the_profiles_keys_are_a_reading_or_a_dead_letter(
    profile: Profile, data: st.DataObject
) -> None:
    good = good_payload(profile)
    keys = sorted(good)
    body = dict(good)
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        if data.draw(st.booleans()):
            del body[key]
        else:
            body[key] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()):
        body[data.draw(st.text(max_size=6))] = data.draw(JSON_SCALARS)
    text = json.dumps(body, allow_nan=True)  # NaN and Infinity as devices print them
    _check_mqtt(profile, text.encode())


def _codecs() -> list[tuple[str, RegisterCodec]]:
    return [(f"{p.name}/{c.register.quantity}", c) for p in modbus_profiles() for c in codecs_for(p)]


CODECS = _codecs()
WORDS = st.integers(min_value=0, max_value=0xFFFF)


@pytest.mark.parametrize(("name", "codec"), CODECS, ids=[n for n, _ in CODECS])
@FUZZ
@given(data=st.data())
def test_any_registers_decode_or_say_why_not(name: str, codec: RegisterCodec, data: st.DataObject) -> None:
    count = codec.register.count
    if codec.register.type == "bool":
        words = data.draw(st.lists(st.integers(0, 1), min_size=1, max_size=1))
        assert isinstance(codec.decode(words), bool)
        return
    length = data.draw(st.sampled_from([count, count] + [n for n in (0, 1, 2, 3, 4, 5) if n != count]))
    words = data.draw(st.lists(WORDS, min_size=length, max_size=length))
    try:
        value = codec.decode(words)
    except CodecError as exc:
        message = str(exc)
        if length != count:
            assert message == f"{codec.register.type} needs {count} register(s), got {length}"
        else:
            assert re.fullmatch(
                rf"{codec.register.type} registers \[.*\] hold -?(nan|inf), not a number", message
            )
        return
    assert length == count
    assert math.isfinite(float(value))


@pytest.mark.parametrize(("name", "codec"), CODECS, ids=[n for n, _ in CODECS])
@FUZZ
@given(data=st.data())
def test_what_the_simulators_encode_decodes_back(
    name: str, codec: RegisterCodec, data: st.DataObject
) -> None:
    reg = codec.register
    if reg.type == "bool":
        flag = data.draw(st.booleans())
        assert codec.decode(codec.encode(flag)) is flag
        return
    step = abs(reg.scale)
    bits = 8 * {"16": 2, "32": 4, "64": 8}[reg.type[1:]]
    raw_max = 2 ** (bits - 1) - 1 if reg.type.startswith("i") else 2**bits - 1
    high = min(raw_max * step + reg.offset, 1e6)
    low = reg.offset if reg.type.startswith("u") else -high
    value = data.draw(st.floats(min_value=low, max_value=high, allow_nan=False))
    decoded = float(codec.decode(codec.encode(value)))
    if reg.type.startswith("f"):
        tolerance = abs(value) * (1e-6 if reg.type == "f32" else 1e-12) * step + 1e-30
        assert decoded == pytest.approx(value * 1.0, abs=tolerance + abs(value) * 1e-6)
    else:
        assert abs(decoded - value) <= step / 2 + 1e-9 * max(1.0, abs(value))


@pytest.mark.parametrize("profile", modbus_profiles(), ids=lambda p: p.ref)
@FUZZ
@given(data=st.data())
def test_any_polled_blocks_are_a_reading_or_a_dead_letter(profile: Profile, data: st.DataObject) -> None:
    blocks: dict[str, dict[int, int]] = {}
    for table, registers in good_blocks(profile).items():
        kept = data.draw(st.lists(st.sampled_from(sorted(registers)), unique=True, max_size=len(registers)))
        word = st.integers(0, 1) if table in ("coil", "discrete") else st.integers(-2, 0x10001)
        blocks[table] = {address: data.draw(word) for address in kept}
    result, _ = process_modbus(device(profile), DeviceState(), blocks, NOW_NS)
    if isinstance(result, DeadLetter):
        assert result.reason in ("decode", "range", "not_finite")
        assert result.message
        result.point("c1").to_line()
    else:
        assert isinstance(result, Reading)
        for point in result.points():
            point.to_line()


# --- the inventory ----------------------------------------------------------------------------------

EXAMPLE = yaml.safe_load((ROOT / "examples" / "community.yaml").read_text(encoding="utf-8"))
# a path: dotted segments, each an index, a plain key, or a quoted one (`' '`, `'a.b'`), or "(top)"
_SEGMENT = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s:.'"][^:.'"]*)"""
PROBLEM = re.compile(rf"^(?P<file>.+?):(?P<line>\d+): (?P<path>{_SEGMENT}(?:\.{_SEGMENT})*): .+$", re.DOTALL)
NEW_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.lists(st.integers(-5, 5) | st.text(max_size=4), max_size=3)
    | st.dictionaries(st.text(max_size=6), st.integers(-5, 5) | st.text(max_size=4), max_size=3)
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a YAML tree (mapping keys and list indices)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


PATHS = _paths(EXAMPLE)


def _mutated(data: st.DataObject) -> Any:
    tree = copy.deepcopy(EXAMPLE)  # (not a JSON round trip: the meters' dates are YAML dates)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(PATHS))
        parent: Any = tree
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            parent[last]  # an earlier mutation may have removed it
        except (KeyError, IndexError, TypeError):
            continue
        action = data.draw(st.sampled_from(["delete", "replace", "rename"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = data.draw(NEW_VALUES)
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=10))] = parent.pop(last)
    return tree


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_a_mutated_inventory_loads_or_is_refused_with_line_and_path(
    tmp_path_factory: Any, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "site.yaml"
    path.write_text(yaml.safe_dump(_mutated(data), allow_unicode=True), encoding="utf-8")
    try:
        site = load_site(path)
    except InventoryError as exc:
        problems = exc.problems
    else:
        assert isinstance(site, Site)
        return
    assert problems
    for problem in problems:
        match = PROBLEM.match(problem)
        assert match is not None, problem
        assert match["file"] == str(path)
