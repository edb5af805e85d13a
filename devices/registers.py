"""A profile's register map as codecs: engineering values <-> register images, pure and I/O-free.

The collector decodes what it polled with `decode_image`; the simulators encode their state with
`encode_values`. Both use the converters chosen once per register (devices/codec.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from devices.codec import Scaling, decoder_for, encoder_for
from devices.profile import Profile, Register, rollover_of

#: register image: table -> address -> 16-bit value (or 0/1 for coils and discrete inputs)
Image = dict[str, dict[int, int]]


@dataclass(frozen=True)
class RegisterCodec:
    """One register of a profile with its converters."""

    register: Register
    order: str
    decode: Callable[[Sequence[int]], float | bool]
    encode: Callable[[float | bool], list[int]]
    rollover: int | None

    @property
    def addresses(self) -> range:
        """The addresses this value occupies."""
        return range(self.register.address, self.register.address + self.register.count)


_CODECS: dict[str, tuple[Profile, tuple[RegisterCodec, ...]]] = {}


def codecs_for(profile: Profile) -> tuple[RegisterCodec, ...]:
    """The codecs of every register of a profile's Modbus map (empty without one), built once."""
    cached = _CODECS.get(profile.ref)
    if cached is not None and cached[0] is profile:
        return cached[1]
    codecs = _build_codecs(profile)
    _CODECS[profile.ref] = (profile, codecs)
    return codecs


def _build_codecs(profile: Profile) -> tuple[RegisterCodec, ...]:
    if profile.modbus is None:
        return ()
    out = []
    for reg in profile.modbus.registers:
        order = profile.modbus.order_of(reg)
        scaling = Scaling(reg.scale, reg.offset)
        out.append(
            RegisterCodec(
                register=reg,
                order=order,
                decode=decoder_for(reg.type, order, scaling),
                encode=encoder_for(reg.type, order, scaling),
                rollover=rollover_of(reg),
            )
        )
    return tuple(out)


#: A drop from above (1 - band) x rollover to below band x rollover is a register wrap, not a reset
#: (the collector's totalizer logic and verification's consumption both use it).
ROLLOVER_BAND = 0.1

_ROLLOVERS: dict[str, tuple[Profile, dict[str, float]]] = {}


def rollover_values(profile: Profile) -> dict[str, float]:
    """Engineering value at which each totalizer register of the profile wraps, worked out once."""
    cached = _ROLLOVERS.get(profile.ref)
    if cached is not None and cached[0] is profile:
        return cached[1]
    values: dict[str, float] = {}
    for codec in codecs_for(profile):
        reg = codec.register
        if codec.rollover is not None and profile.quantity[reg.quantity].totalizer:
            values[reg.quantity] = codec.rollover * abs(reg.scale) + reg.offset
    _ROLLOVERS[profile.ref] = (profile, values)
    return values


def encode_values(profile: Profile, values: Mapping[str, float | bool]) -> Image:
    """The register image a device shows for these quantity values (quantities absent are skipped)."""
    image: Image = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
    for codec in codecs_for(profile):
        value = values.get(codec.register.quantity)
        if value is None:
            continue
        for address, word in zip(codec.addresses, codec.encode(value), strict=True):
            image[codec.register.table][address] = word
    return image


def decode_image(profile: Profile, image: Mapping[str, Mapping[int, int]]) -> dict[str, float | bool]:
    """Decode every quantity whose registers are all present in the image."""
    values: dict[str, float | bool] = {}
    for codec in codecs_for(profile):
        table = image.get(codec.register.table, {})
        words = [table.get(a) for a in codec.addresses]
        if all(w is not None for w in words):
            values[codec.register.quantity] = codec.decode([int(w) for w in words if w is not None])
    return values
