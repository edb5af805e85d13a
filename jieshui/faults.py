"""Fault injection, as data: what can go wrong with a device, configured per device in the inventory
(`faults:`) or on the command line (`--fault COMMUNITY/DEVICE:KIND[:key=value,...]`).

The simulators apply them: value faults (stuck, spike, reset, rollover, tamper) change what the meter
reports, transport faults (dropout, slow, timeout, exception) change how its Modbus face answers, and
message faults (malformed, duplicate, out_of_order, clock_skew) change what its MQTT face publishes.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from jieshui.errors import JieshuiError


class _Fault(BaseModel):
    # a fault of inf or nan is no fault: refused like any other bad value
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    start: dt.datetime | None = None  # None: from the beginning
    end: dt.datetime | None = None  # None: to the end

    def active(self, t: dt.datetime) -> bool:
        """Whether the fault applies at time `t` (aware datetimes)."""
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


class Dropout(_Fault):
    """The device is silent: no Modbus answer, no MQTT message."""

    kind: Literal["dropout"]


class Stuck(_Fault):
    """A quantity freezes at its value when the fault starts."""

    kind: Literal["stuck"]
    quantity: str


class Spike(_Fault):
    """One reading of a quantity, at `start`, is multiplied by `factor`."""

    kind: Literal["spike"]
    quantity: str
    factor: float = 100.0


class Reset(_Fault):
    """The meter is replaced at `start`: the totalizer starts again from `new_reading`."""

    kind: Literal["reset"]
    quantity: str
    new_reading: float = Field(default=0.0, ge=0)


class Rollover(_Fault):
    """The totalizer register starts `before_wrap` raw counts below its rollover value, so it wraps."""

    kind: Literal["rollover"]
    quantity: str
    before_wrap: int = Field(default=500, gt=0)


class Tamper(_Fault):
    """From `start`, the reported totalizer grows `factor` times faster than the water does."""

    kind: Literal["tamper"]
    quantity: str
    factor: float = Field(default=1.5, gt=0)


class ClockSkew(_Fault):
    """The device's own clock is `seconds` ahead (negative: behind)."""

    kind: Literal["clock_skew"]
    seconds: float


class Slow(_Fault):
    """Each Modbus answer is delayed by `delay_s`."""

    kind: Literal["slow"]
    delay_s: float = Field(gt=0, le=600)


class ModbusException(_Fault):
    """The device answers with a Modbus exception `code` with `probability`."""

    kind: Literal["exception"]
    code: Literal[1, 2, 3, 4, 5, 6, 10, 11] = 6  # 6: device busy, 11: gateway target failed
    probability: float = Field(default=1.0, gt=0, le=1)


class Malformed(_Fault):
    """A message is corrupted with `probability`: truncated JSON, wrong types, missing keys, garbage."""

    kind: Literal["malformed"]
    probability: float = Field(default=0.1, gt=0, le=1)
    variant: Literal["truncated", "wrong_type", "missing_key", "not_json", "out_of_range", "any"] = "any"


class Duplicate(_Fault):
    """A message is published twice with `probability`."""

    kind: Literal["duplicate"]
    probability: float = Field(default=0.1, gt=0, le=1)


class OutOfOrder(_Fault):
    """A message is held back and published after the next one with `probability`."""

    kind: Literal["out_of_order"]
    probability: float = Field(default=0.1, gt=0, le=1)


Fault = Annotated[
    Dropout
    | Stuck
    | Spike
    | Reset
    | Rollover
    | Tamper
    | ClockSkew
    | Slow
    | ModbusException
    | Malformed
    | Duplicate
    | OutOfOrder,
    Field(discriminator="kind"),
]
_FAULT = TypeAdapter(Fault)

VALUE_FAULTS = (Stuck, Spike, Reset, Rollover, Tamper)


class FaultSpecError(JieshuiError):
    """A --fault option could not be understood."""


def parse_fault_option(text: str) -> tuple[str, str, Fault]:
    """Parse `COMMUNITY/DEVICE:KIND[:key=value,...]` into (community, device, fault)."""
    target, _, rest = text.partition(":")
    community, _, device = target.partition("/")
    if not community or not device or not rest:
        raise FaultSpecError(f"--fault {text!r}: expected COMMUNITY/DEVICE:KIND[:key=value,...]")
    kind, _, params = rest.partition(":")
    fields: dict[str, str] = {"kind": kind}
    for pair in filter(None, params.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise FaultSpecError(f"--fault {text!r}: {pair!r} is not key=value")
        fields[key.strip()] = value.strip()
    try:
        return community, device, _FAULT.validate_python(fields)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FaultSpecError(f"--fault {text!r}: {details}") from exc
