"""Register codecs: a decode table written out by hand, the errors with their messages, round trips
(hypothesis) and every shipped profile's register map from values to an image and back.

The expected registers of the table are written by hand from the big-endian bytes of each value (what
`struct.pack(">...")` gives) moved to the wire positions the byte order names; a test-local helper
rebuilds them from `struct` independently of the code under test to check the hand work.
"""

from __future__ import annotations

import math
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codec import CodecError, Scaling, decoder_for, encoder_for
from devices.profile import Profile, Register, load_profiles
from devices.registers import decode_image, encode_values

ORDERS_BY_SIZE = {
    2: ("AB", "BA"),
    4: ("ABCD", "DCBA", "BADC", "CDAB"),
    8: ("ABCDEFGH", "HGFEDCBA", "BADCFEHG", "GHEFCDAB"),
}
SIZE = {"u16": 2, "i16": 2, "u32": 4, "i32": 4, "u64": 8, "i64": 8, "f32": 4, "f64": 8}
STRUCT_CODE = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q", "f32": "f", "f64": "d"}

# float32 pi is 0x40490FDB; float64 pi is 0x400921FB54442D18 (IEEE 754).
F32_PI = struct.unpack(">f", bytes.fromhex("40490FDB"))[0]
F64_PI = struct.unpack(">d", bytes.fromhex("400921FB54442D18"))[0]
# -123.5 = -1.1110111b * 2**6: sign 1, exponent 127 + 6 = 0x85, mantissa 0x770000 -> 0xC2F70000.
F32_M123_5 = -123.5

# (type, order, scale, offset, registers, expected engineering value)
DECODE_TABLE: list[tuple[str, str, float, float, list[int], float]] = [
    # u16 0x1234 = 4660
    ("u16", "AB", 1.0, 0.0, [0x1234], 0x1234),
    ("u16", "BA", 1.0, 0.0, [0x3412], 0x1234),
    ("u16", "AB", 1.0, 0.0, [0xFFFF], 65535),
    ("u16", "AB", 0.1, 0.0, [0x3E80], 1600.0),  # 16000 * 0.1
    # i16 -12345 = 0xCFC7 (two's complement)
    ("i16", "AB", 1.0, 0.0, [0xCFC7], -12345),
    ("i16", "BA", 1.0, 0.0, [0xC7CF], -12345),
    ("i16", "AB", 1.0, 0.0, [0x8000], -32768),
    ("i16", "AB", 0.1, -40.0, [0xFF9C], -50.0),  # -100 * 0.1 - 40
    # u32 0x12345678 = 305419896
    ("u32", "ABCD", 1.0, 0.0, [0x1234, 0x5678], 0x12345678),
    ("u32", "DCBA", 1.0, 0.0, [0x7856, 0x3412], 0x12345678),
    ("u32", "BADC", 1.0, 0.0, [0x3412, 0x7856], 0x12345678),
    ("u32", "CDAB", 1.0, 0.0, [0x5678, 0x1234], 0x12345678),
    ("u32", "ABCD", 0.01, 0.0, [0x0001, 0x86A0], 1000.0),  # 100000 * 0.01
    ("u32", "CDAB", 0.001, 0.0, [0xFFFF, 0xFFFF], 4294967.295),
    # i32 -0x12345678 = 0xEDCBA988
    ("i32", "ABCD", 1.0, 0.0, [0xEDCB, 0xA988], -0x12345678),
    ("i32", "DCBA", 1.0, 0.0, [0x88A9, 0xCBED], -0x12345678),
    ("i32", "BADC", 1.0, 0.0, [0xCBED, 0x88A9], -0x12345678),
    ("i32", "CDAB", 1.0, 0.0, [0xA988, 0xEDCB], -0x12345678),
    ("i32", "ABCD", 0.5, 10.0, [0xFFFF, 0xFFFE], 9.0),  # -2 * 0.5 + 10
    # u64 0x0012345678ABCDEF = 5124095577148911 (below 2**53: engineering values are floats)
    ("u64", "ABCDEFGH", 1.0, 0.0, [0x0012, 0x3456, 0x78AB, 0xCDEF], 0x0012345678ABCDEF),
    ("u64", "HGFEDCBA", 1.0, 0.0, [0xEFCD, 0xAB78, 0x5634, 0x1200], 0x0012345678ABCDEF),
    ("u64", "BADCFEHG", 1.0, 0.0, [0x1200, 0x5634, 0xAB78, 0xEFCD], 0x0012345678ABCDEF),
    ("u64", "GHEFCDAB", 1.0, 0.0, [0xCDEF, 0x78AB, 0x3456, 0x0012], 0x0012345678ABCDEF),
    ("u64", "GHEFCDAB", 0.001, 0.0, [0x86A0, 0x0001, 0x0000, 0x0000], 100.0),  # 100000 * 0.001
    # i64 -0x0012345678ABCDEF = 0xFFEDCBA987543211 (two's complement)
    ("i64", "ABCDEFGH", 1.0, 0.0, [0xFFED, 0xCBA9, 0x8754, 0x3211], -0x0012345678ABCDEF),
    ("i64", "HGFEDCBA", 1.0, 0.0, [0x1132, 0x5487, 0xA9CB, 0xEDFF], -0x0012345678ABCDEF),
    ("i64", "BADCFEHG", 1.0, 0.0, [0xEDFF, 0xA9CB, 0x5487, 0x1132], -0x0012345678ABCDEF),
    ("i64", "GHEFCDAB", 1.0, 0.0, [0x3211, 0x8754, 0xCBA9, 0xFFED], -0x0012345678ABCDEF),
    ("i64", "ABCDEFGH", 1.0, 0.0, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
    # f32 pi = 0x40490FDB
    ("f32", "ABCD", 1.0, 0.0, [0x4049, 0x0FDB], F32_PI),
    ("f32", "DCBA", 1.0, 0.0, [0xDB0F, 0x4940], F32_PI),
    ("f32", "BADC", 1.0, 0.0, [0x4940, 0xDB0F], F32_PI),
    ("f32", "CDAB", 1.0, 0.0, [0x0FDB, 0x4049], F32_PI),
    ("f32", "ABCD", 1.0, 0.0, [0xC2F7, 0x0000], F32_M123_5),
    ("f32", "CDAB", 2.0, 1.0, [0x0000, 0xC2F7], -246.0),  # -123.5 * 2 + 1
    # f64 pi = 0x400921FB54442D18
    ("f64", "ABCDEFGH", 1.0, 0.0, [0x4009, 0x21FB, 0x5444, 0x2D18], F64_PI),
    ("f64", "HGFEDCBA", 1.0, 0.0, [0x182D, 0x4454, 0xFB21, 0x0940], F64_PI),
    ("f64", "BADCFEHG", 1.0, 0.0, [0x0940, 0xFB21, 0x4454, 0x182D], F64_PI),
    ("f64", "GHEFCDAB", 1.0, 0.0, [0x2D18, 0x5444, 0x21FB, 0x4009], F64_PI),
]

TYPE_ORDERS = [(kind, order) for kind, size in SIZE.items() for order in ORDERS_BY_SIZE[size]]


def _wire_registers(kind: str, order: str, raw: float) -> list[int]:
    """Test oracle: wire byte i carries big-endian value byte `order[i]`; registers are high byte first."""
    packed = struct.pack(">" + STRUCT_CODE[kind], raw)
    wire = bytes(packed[ord(letter) - ord("A")] for letter in order)
    return [wire[i] << 8 | wire[i + 1] for i in range(0, len(wire), 2)]


def _raw_of(kind: str, scale: float, offset: float, value: float) -> float:
    raw = (value - offset) / scale
    return raw if kind.startswith("f") else round(raw)


def test_decode_table_covers_every_type_and_byte_order() -> None:
    covered = {(kind, order) for kind, order, *_ in DECODE_TABLE}
    assert covered == set(TYPE_ORDERS)


@pytest.mark.parametrize(("kind", "order", "scale", "offset", "registers", "expected"), DECODE_TABLE)
def test_hand_written_registers_agree_with_struct_bytes(
    kind: str, order: str, scale: float, offset: float, registers: list[int], expected: float
) -> None:
    assert registers == _wire_registers(kind, order, _raw_of(kind, scale, offset, expected))


@pytest.mark.parametrize(("kind", "order", "scale", "offset", "registers", "expected"), DECODE_TABLE)
def test_decode_gives_the_engineering_value(
    kind: str, order: str, scale: float, offset: float, registers: list[int], expected: float
) -> None:
    decode = decoder_for(kind, order, Scaling(scale, offset))  # type: ignore[arg-type]
    value = decode(registers)
    assert isinstance(value, float)
    if scale == 1.0 and offset == 0.0:
        assert value == float(expected)
    else:
        assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("kind", "order", "scale", "offset", "registers", "expected"), DECODE_TABLE)
def test_encode_gives_the_registers_a_device_sends(
    kind: str, order: str, scale: float, offset: float, registers: list[int], expected: float
) -> None:
    encode = encoder_for(kind, order, Scaling(scale, offset))  # type: ignore[arg-type]
    assert encode(expected) == registers


@pytest.mark.parametrize(
    ("kind", "registers", "expected"),
    [("bool", [1], True), ("bool", [0], False)],
)
def test_bool_is_one_bit(kind: str, registers: list[int], expected: bool) -> None:
    assert decoder_for(kind, "AB", Scaling())(registers) is expected  # type: ignore[arg-type]
    assert encoder_for(kind, "AB", Scaling())(expected) == registers  # type: ignore[arg-type]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "order", "registers", "message"),
    [
        ("u16", "AB", [], "u16 needs 1 register(s), got 0"),
        ("u16", "AB", [1, 2], "u16 needs 1 register(s), got 2"),
        ("u32", "ABCD", [0x1234], "u32 needs 2 register(s), got 1"),
        ("f32", "CDAB", [1, 2, 3], "f32 needs 2 register(s), got 3"),
        ("i64", "ABCDEFGH", [1, 2, 3], "i64 needs 4 register(s), got 3"),
        ("f64", "HGFEDCBA", [1, 2], "f64 needs 4 register(s), got 2"),
    ],
)
def test_decode_refuses_the_wrong_register_count(
    kind: str, order: str, registers: list[int], message: str
) -> None:
    decode = decoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        decode(registers)


@pytest.mark.parametrize(
    ("kind", "order", "registers", "message"),
    [
        ("u16", "AB", [65536], "register value 65536 is outside 0..65535"),
        ("i16", "BA", [-1], "register value -1 is outside 0..65535"),
        ("u32", "ABCD", [0, 70000], "register value 70000 is outside 0..65535"),
        ("f64", "ABCDEFGH", [0, 0, -5, 0], "register value -5 is outside 0..65535"),
    ],
)
def test_decode_refuses_register_values_outside_16_bits(
    kind: str, order: str, registers: list[int], message: str
) -> None:
    decode = decoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        decode(registers)


@pytest.mark.parametrize(
    ("kind", "order", "message"),
    [
        ("u16", "ABCD", "byte order 'ABCD' does not fit u16; use one of AB, BA"),
        ("i16", "CDAB", "byte order 'CDAB' does not fit i16; use one of AB, BA"),
        ("u32", "AB", "byte order 'AB' does not fit u32; use one of ABCD, DCBA, BADC, CDAB"),
        ("f32", "GHEFCDAB", "byte order 'GHEFCDAB' does not fit f32; use one of ABCD, DCBA, BADC, CDAB"),
        ("i32", "ACBD", "byte order 'ACBD' does not fit i32; use one of ABCD, DCBA, BADC, CDAB"),
        (
            "u64",
            "CDAB",
            "byte order 'CDAB' does not fit u64; use one of ABCDEFGH, HGFEDCBA, BADCFEHG, GHEFCDAB",
        ),
        (
            "f64",
            "ABCD",
            "byte order 'ABCD' does not fit f64; use one of ABCDEFGH, HGFEDCBA, BADCFEHG, GHEFCDAB",
        ),
    ],
)
def test_byte_order_that_does_not_fit_the_type_is_refused(kind: str, order: str, message: str) -> None:
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        decoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        encoder_for(kind, order, Scaling())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "order", "registers", "message"),
    [
        # quiet NaN 0x7FC00000
        ("f32", "ABCD", [0x7FC0, 0x0000], "f32 registers [32704, 0] hold nan, not a number"),
        ("f32", "CDAB", [0x0000, 0x7FC0], "f32 registers [0, 32704] hold nan, not a number"),
        ("f32", "DCBA", [0x0000, 0xC07F], "f32 registers [0, 49279] hold nan, not a number"),
        # +infinity 0x7F800000, -infinity 0xFF800000
        ("f32", "ABCD", [0x7F80, 0x0000], "f32 registers [32640, 0] hold inf, not a number"),
        ("f32", "BADC", [0x80FF, 0x0000], "f32 registers [33023, 0] hold -inf, not a number"),
        # f64 quiet NaN 0x7FF8000000000000
        (
            "f64",
            "ABCDEFGH",
            [0x7FF8, 0, 0, 0],
            "f64 registers [32760, 0, 0, 0] hold nan, not a number",
        ),
        (
            "f64",
            "GHEFCDAB",
            [0, 0, 0, 0x7FF8],
            "f64 registers [0, 0, 0, 32760] hold nan, not a number",
        ),
    ],
)
def test_decode_refuses_float_registers_that_hold_no_number(
    kind: str, order: str, registers: list[int], message: str
) -> None:
    decode = decoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        decode(registers)


@pytest.mark.parametrize(
    ("kind", "order", "scale", "value", "message"),
    [
        ("u16", "AB", 1.0, 65536, "65536 is raw 65536, outside u16 range 0..65535"),
        ("u16", "BA", 1.0, -1, "-1 is raw -1, outside u16 range 0..65535"),
        ("i16", "AB", 1.0, 32768, "32768 is raw 32768, outside i16 range -32768..32767"),
        ("i16", "AB", 1.0, -32769, "-32769 is raw -32769, outside i16 range -32768..32767"),
        ("u32", "CDAB", 1.0, 2**32, "4294967296 is raw 4294967296, outside u32 range 0..4294967295"),
        ("u32", "ABCD", 0.001, 4294968.0, "4294968.0 is raw 4294968000, outside u32 range 0..4294967295"),
        ("u32", "ABCD", 0.01, -0.01, "-0.01 is raw -1, outside u32 range 0..4294967295"),
        (
            "i32",
            "DCBA",
            1.0,
            -(2**31) - 1,
            "-2147483649 is raw -2147483649, outside i32 range -2147483648..2147483647",
        ),
        (
            "u64",
            "ABCDEFGH",
            1.0,
            -1,
            "-1 is raw -1, outside u64 range 0..18446744073709551615",
        ),
        (
            "i64",
            "GHEFCDAB",
            1.0,
            2**64,
            "18446744073709551616 is raw 18446744073709551616, outside i64 range "
            "-9223372036854775808..9223372036854775807",
        ),
    ],
)
def test_encode_refuses_an_integer_out_of_range(
    kind: str, order: str, scale: float, value: float, message: str
) -> None:
    encode = encoder_for(kind, order, Scaling(scale))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=f"^{re.escape(message)}$"):
        encode(value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("u16", math.inf),
        ("i32", -math.inf),
        ("u32", math.nan),
        ("i64", math.inf),
        ("f32", 1e39),  # beyond float32's largest finite value (3.4e38)
        ("f32", -1e39),
    ],
)
def test_encode_refuses_values_it_cannot_represent_with_a_codec_error(kind: str, value: float) -> None:
    # CodecError: "A register value cannot be decoded or encoded; the message names the value and why."
    order = ORDERS_BY_SIZE[SIZE[kind]][0]
    encode = encoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=re.escape(str(value))):
        encode(value)


# -- round trips ----------------------------------------------------------------------------------

INT_RANGE = {
    "u16": (0, 2**16 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    # engineering values are floats: 64-bit integers are exact up to 2**53
    "u64": (0, 2**53),
    "i64": (-(2**53), 2**53),
}


@pytest.mark.parametrize(("kind", "order"), TYPE_ORDERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_then_decode_returns_the_value(kind: str, order: str, data: st.DataObject) -> None:
    encode = encoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    decode = decoder_for(kind, order, Scaling())  # type: ignore[arg-type]
    if kind in INT_RANGE:
        low, high = INT_RANGE[kind]
        value = data.draw(st.integers(low, high))
        registers = encode(value)
        assert registers == _wire_registers(kind, order, value)
        assert decode(registers) == value
    elif kind == "f32":
        value = data.draw(st.floats(-3.4e38, 3.4e38, allow_nan=False))
        registers = encode(value)
        assert len(registers) == 2
        assert all(0 <= r <= 0xFFFF for r in registers)
        assert decode(registers) == pytest.approx(value, rel=2**-23, abs=2**-149)
    else:
        value = data.draw(st.floats(allow_nan=False, allow_infinity=False))
        registers = encode(value)
        assert registers == _wire_registers(kind, order, value)
        assert decode(registers) == value


@pytest.mark.parametrize(("kind", "order"), [(k, o) for k, o in TYPE_ORDERS if k in INT_RANGE])
@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    scale=st.sampled_from([0.001, 0.01, 0.1, 0.2, 0.5, 10.0]),
    offset=st.sampled_from([0.0, -40.0, 100.0]),
)
def test_scaled_integer_round_trip_is_within_half_a_step(
    kind: str, order: str, data: st.DataObject, scale: float, offset: float
) -> None:
    low, high = INT_RANGE[kind]
    # stay where a raw step is still far above float64 resolution
    low, high = max(low, -(2**40)), min(high, 2**40)
    raw = data.draw(st.integers(low, high))
    value = raw * scale + offset + data.draw(st.floats(-0.49, 0.49)) * scale
    decoded = decoder_for(kind, order, Scaling(scale, offset))(  # type: ignore[arg-type]
        encoder_for(kind, order, Scaling(scale, offset))(value)  # type: ignore[arg-type]
    )
    assert abs(decoded - value) <= scale / 2 + 1e-9 * max(1.0, abs(value))


# -- every shipped profile ------------------------------------------------------------------------

PROFILES = {ref: p for ref, p in load_profiles().items() if "@" in ref}
RAW_RANGE = {
    "u16": (0, 2**16 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**53),
    "i64": (-(2**53), 2**53),
    "f32": (-3.4e38, 3.4e38),
    "f64": (-1e300, 1e300),
}


def _value_strategy(profile: Profile, reg: Register) -> st.SearchStrategy[float | bool]:
    quantity = profile.quantity[reg.quantity]
    if reg.type == "bool":
        return st.booleans()
    raw_low, raw_high = RAW_RANGE[reg.type]
    ends = sorted((raw_low * reg.scale + reg.offset, raw_high * reg.scale + reg.offset))
    low = max(ends[0], quantity.min) if quantity.min is not None else ends[0]
    high = min(ends[1], quantity.max) if quantity.max is not None else ends[1]
    assert low < high, f"{profile.ref} {reg.quantity}: no value fits both quantity and register"
    if quantity.type == "int" and reg.scale == 1.0 and reg.offset == 0.0:
        return st.integers(math.ceil(low), math.floor(high))
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def _tolerance(reg: Register, value: float) -> float:
    if reg.type == "f32":
        return abs(value) * 2**-23 + 2**-149
    if reg.type == "f64":
        return abs(value) * 2**-52
    return abs(reg.scale) / 2 + 1e-9 * max(1.0, abs(value))


def test_every_shipped_profile_is_covered() -> None:
    assert {p.name for p in PROFILES.values()} >= {"hs-rp55", "hy-rwc200", "lq-rhc10", "ul-wm100", "wx-cw01"}


@pytest.mark.parametrize("ref", sorted(PROFILES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_profile_image_decodes_to_the_values_encoded(ref: str, data: st.DataObject) -> None:
    profile = PROFILES[ref]
    registers = profile.modbus.registers if profile.modbus is not None else []
    values = {reg.quantity: data.draw(_value_strategy(profile, reg), label=reg.quantity) for reg in registers}
    image = encode_values(profile, values)
    used = sum(len(words) for words in image.values())
    assert used == sum(reg.count for reg in registers)
    for table, words in image.items():
        assert all(0 <= w <= (1 if table in ("coil", "discrete") else 0xFFFF) for w in words.values())
    decoded = decode_image(profile, image)
    assert set(decoded) == set(values)
    for reg in registers:
        expected = values[reg.quantity]
        got = decoded[reg.quantity]
        if reg.type == "bool":
            assert got is expected
        else:
            assert abs(got - expected) <= _tolerance(reg, float(expected)), (reg.quantity, expected, got)


@pytest.mark.parametrize("ref", sorted(PROFILES))
def test_profile_image_skips_absent_quantities_and_decodes_only_complete_values(ref: str) -> None:
    profile = PROFILES[ref]
    registers = profile.modbus.registers if profile.modbus is not None else []
    if not registers:
        assert encode_values(profile, {"anything": 1.0}) == {
            "holding": {},
            "input": {},
            "coil": {},
            "discrete": {},
        }
        return
    first, rest = registers[0], registers[1:]
    image = encode_values(profile, {first.quantity: True if first.type == "bool" else 1.0})
    assert sum(len(words) for words in image.values()) == first.count
    assert set(decode_image(profile, image)) == {first.quantity}
    multi = [reg for reg in rest if reg.count > 1]
    if multi:
        reg = multi[0]
        image = encode_values(profile, {reg.quantity: 2.0})
        del image[reg.table][reg.address + reg.count - 1]
        assert reg.quantity not in decode_image(profile, image)
