"""Register codecs: raw Modbus registers <-> engineering values, chosen once per (type, byte order).

Pure functions, no I/O. A multi-register value arrives as 16-bit registers, each sent high byte
first; the byte order names where each byte of the big-endian value (A = most significant) sits on
the wire, as Telegraf names them: `ABCD` is big-endian, `CDAB` swaps the words, `BADC` swaps the bytes
within each word, `DCBA` is little-endian (64-bit orders likewise with eight letters). A converter is
built once per register spec (`decoder_for`, `encoder_for`), so nothing branches per reading.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

RegisterType = Literal["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool"]

#: struct code and size in bytes of each register type (bool is one coil or discrete input).
TYPE_FORMAT: dict[str, tuple[str, int]] = {
    "u16": ("H", 2),
    "i16": ("h", 2),
    "u32": ("I", 4),
    "i32": ("i", 4),
    "u64": ("Q", 8),
    "i64": ("q", 8),
    "f32": ("f", 4),
    "f64": ("d", 8),
}

#: Byte orders accepted for each size (Telegraf's names).
ORDERS: dict[int, tuple[str, ...]] = {
    2: ("AB", "BA"),
    4: ("ABCD", "DCBA", "BADC", "CDAB"),
    8: ("ABCDEFGH", "HGFEDCBA", "BADCFEHG", "GHEFCDAB"),
}


class CodecError(ValueError):
    """A register value cannot be decoded or encoded; the message names the value and why."""


def register_count(kind: RegisterType) -> int:
    """How many 16-bit registers (or, for bool, coils) a value of this type occupies."""
    return 1 if kind == "bool" else TYPE_FORMAT[kind][1] // 2


def default_order(kind: RegisterType, order32: str) -> str:
    """The order used when a register gives none: the profile's 32-bit order adapted to the size."""
    size = TYPE_FORMAT[kind][1] if kind != "bool" else 2
    if size == 2:
        return "AB"
    if size == 4:
        return order32
    return {"ABCD": "ABCDEFGH", "DCBA": "HGFEDCBA", "BADC": "BADCFEHG", "CDAB": "GHEFCDAB"}[order32]


@dataclass(frozen=True)
class Scaling:
    """value = raw * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0


def _permutation(order: str) -> tuple[int, ...]:
    # wire byte i carries value byte (order[i] - 'A'); to rebuild big-endian bytes, value byte j
    # comes from wire position perm[j].
    return tuple(order.index(chr(ord("A") + j)) for j in range(len(order)))


def decoder_for(kind: RegisterType, order: str, scaling: Scaling) -> Callable[[Sequence[int]], float | bool]:
    """A function from the registers of one value to its engineering value."""
    if kind == "bool":
        return lambda regs: bool(regs[0])
    fmt, size = TYPE_FORMAT[kind]
    if order not in ORDERS[size]:
        raise CodecError(f"byte order {order!r} does not fit {kind}; use one of {', '.join(ORDERS[size])}")
    unpack = struct.Struct(">" + fmt).unpack
    perm = _permutation(order)
    identity = perm == tuple(range(size))
    count = size // 2
    scale, offset = scaling.scale, scaling.offset
    is_float = kind.startswith("f")

    def decode(regs: Sequence[int]) -> float:
        if len(regs) != count:
            raise CodecError(f"{kind} needs {count} register(s), got {len(regs)}")
        for r in regs:
            if not 0 <= r <= 0xFFFF:
                raise CodecError(f"register value {r} is outside 0..65535")
        wire = b"".join(r.to_bytes(2, "big") for r in regs)
        raw = unpack(wire if identity else bytes(wire[p] for p in perm))[0]
        if is_float and not math.isfinite(raw):
            raise CodecError(f"{kind} registers {list(regs)} hold {raw}, not a number")
        return float(raw * scale + offset)

    return decode


def encoder_for(kind: RegisterType, order: str, scaling: Scaling) -> Callable[[float | bool], list[int]]:
    """The inverse of `decoder_for`: an engineering value to the registers a device would send.

    Integer types round to the nearest raw step and refuse values outside the type's range.
    """
    if kind == "bool":
        return lambda value: [1 if value else 0]
    fmt, size = TYPE_FORMAT[kind]
    if order not in ORDERS[size]:
        raise CodecError(f"byte order {order!r} does not fit {kind}; use one of {', '.join(ORDERS[size])}")
    packer = struct.Struct(">" + fmt)
    perm = _permutation(order)
    scale, offset = scaling.scale, scaling.offset
    is_float = kind.startswith("f")
    bits = size * 8
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if kind.startswith("i") else (0, 2**bits - 1)

    def encode(value: float | bool) -> list[int]:
        raw_value = (float(value) - offset) / scale
        if not math.isfinite(raw_value) and not is_float:
            raise CodecError(f"{value} cannot be encoded as {kind}")
        if is_float:
            try:
                packed = packer.pack(raw_value)
            except (OverflowError, struct.error) as exc:
                raise CodecError(f"{value} is outside the {kind} range") from exc
        else:
            raw = round(raw_value)
            if not low <= raw <= high:
                raise CodecError(f"{value} is raw {raw}, outside {kind} range {low}..{high}")
            packed = packer.pack(raw)
        wire = bytearray(size)
        for j, p in enumerate(perm):
            wire[p] = packed[j]
        return [int.from_bytes(wire[i : i + 2], "big") for i in range(0, size, 2)]

    return encode
