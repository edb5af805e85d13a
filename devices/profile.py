"""Load and validate device profiles (`devices/profiles/*.yaml`) into pydantic models.

Profiles are data, not code: a new meter model is a new file. A profile names the quantities a device
measures (unit, valid range, whether it is a cumulative totalizer), its Modbus register map and/or its
MQTT payload schema. It is referenced from the site inventory by `name` or `name@version`; `DeviceKind`
names the InfluxDB measurement its readings go to. Validation crosses fields, as Home Assistant's
`struct_validator` does: the register count follows from the type, overlapping registers, impossible
type/table pairs and byte orders are refused with the profile, register and key named.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.codec import ORDERS, TYPE_FORMAT, RegisterType, default_order, register_count
from jieshui.errors import ProfileError

PROFILE_DIR = Path(__file__).parent / "profiles"
FIELD_NAME = r"^[a-z][a-z0-9_]*$"


class DeviceKind(StrEnum):
    """What a device is; also the name of the InfluxDB measurement its readings are stored in."""

    RAINWATER_SYSTEM = "rainwater_system"  # harvesting controller: rain gauge, tank, treatment, supply
    RIVER_PUMP = "river_pump"
    CAR_WASH = "car_wash"
    WATER_METER = "water_meter"  # a potable or make-up water meter (e.g. the community master meter)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(_Model):
    """A text users read, in both languages."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Quantity(_Model):
    """One measured quantity; `name` is the InfluxDB field, so it carries its unit (`supply_m3`)."""

    name: str = Field(pattern=FIELD_NAME)
    unit: str
    type: Literal["float", "int", "bool", "string"] = "float"
    description: LocalText
    min: float | None = None  # valid range: readings outside it are dead-lettered by the collector
    max: float | None = None
    totalizer: bool = False  # cumulative; consumption is the difference between readings
    values: list[str] | None = None  # allowed values of a string quantity

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"quantity {self.name!r}: min {self.min} must be below max {self.max}")
        if self.values is not None and self.type != "string":
            raise ValueError(f"quantity {self.name!r}: only string quantities list allowed values")
        if self.totalizer and self.type not in ("float", "int"):
            raise ValueError(f"quantity {self.name!r}: a totalizer must be numeric")
        return self


Table = Literal["holding", "input", "coil", "discrete"]


class Register(_Model):
    """Where one quantity sits in the Modbus map and how its raw value becomes an engineering value."""

    quantity: str
    table: Table
    address: int = Field(ge=0, le=65535)  # protocol address, 0-based as on the wire
    type: RegisterType
    order: str | None = None  # byte order, e.g. ABCD / CDAB; default: the map's
    scale: float = 1.0  # value = raw * scale + offset
    offset: float = 0.0
    # Raw count at which a totalizer wraps to 0 (the register maximum + 1 for unsigned integers).
    rollover: int | None = Field(default=None, gt=0)

    @property
    def count(self) -> int:
        """Registers (or bits) this value occupies."""
        return register_count(self.type)


class ModbusMap(_Model):
    """A device's register map and how requests to it may be merged."""

    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=0, ge=0, le=124)  # unused registers a merged request may span
    byte_order: Literal["ABCD", "DCBA", "BADC", "CDAB"] = "ABCD"  # for 32/64-bit values
    registers: list[Register] = Field(min_length=1)

    def order_of(self, register: Register) -> str:
        """The byte order of a register: its own, else the map's adapted to its size."""
        return register.order or default_order(register.type, self.byte_order)


class MqttField(_Model):
    """One key of the JSON payload: either a quantity or message metadata."""

    key: str = Field(min_length=1)
    quantity: str | None = None  # None for metadata (sequence number, event type)
    type: Literal["number", "integer", "string", "boolean"]
    required: bool = True
    values: list[str] | None = None  # allowed values of a string key
    scale: float = 1.0  # quantity = JSON value * scale (e.g. litres in the payload, m3 stored)


class MqttSchema(_Model):
    """The JSON payload a device publishes on `jieshui/<district>/<community>/<device>/telemetry`."""

    timestamp_key: str | None = "ts"
    timestamp_format: Literal["epoch_ms", "epoch_s", "iso8601"] = "epoch_ms"
    sequence_key: str | None = None  # a per-device message counter, for de-duplication
    # The longest a healthy device stays quiet (a status message at least this often); event-driven
    # devices send more on events. None: it reports at the poll interval the inventory gives.
    report_interval_s: float | None = Field(default=None, gt=0)
    fields: list[MqttField] = Field(min_length=1)


class Profile(_Model):
    """One device model: identity, kind, quantities and its Modbus and/or MQTT faces."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: int = Field(ge=1)
    kind: DeviceKind
    vendor: str
    model: str
    description: LocalText
    clock: Literal["utc", "local"] = "utc"  # how the device's own timestamps are meant
    quantities: list[Quantity] = Field(min_length=1)
    modbus: ModbusMap | None = None
    mqtt: MqttSchema | None = None

    @property
    def ref(self) -> str:
        """`name@version`, the provenance tag of every reading decoded with this profile."""
        return f"{self.name}@{self.version}"

    @cached_property
    def quantity(self) -> dict[str, Quantity]:
        """Quantities by name."""
        return {q.name: q for q in self.quantities}

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[str] = []
        names = [q.name for q in self.quantities]
        if len(set(names)) != len(names):
            problems.append("quantities: a name is listed twice")
        known = set(names)
        if self.modbus is None and self.mqtt is None:
            problems.append("a profile needs a modbus map, an mqtt schema, or both")
        covered: set[str] = set()
        if self.modbus is not None:
            problems.extend(_check_registers(self.modbus, self.quantity, known))
            covered |= {r.quantity for r in self.modbus.registers}
        if self.mqtt is not None:
            for i, f in enumerate(self.mqtt.fields):
                if f.quantity is not None and f.quantity not in known:
                    problems.append(f"mqtt.fields.{i}: unknown quantity {f.quantity!r}")
                covered.add(f.quantity or "")
        for name in names:
            if name not in covered:
                problems.append(f"quantity {name!r} is neither in the register map nor in the payload")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _check_registers(modbus: ModbusMap, quantities: dict[str, Quantity], known: set[str]) -> list[str]:
    problems: list[str] = []
    used: dict[tuple[str, int], int] = {}
    for i, reg in enumerate(modbus.registers):
        where = f"modbus.registers.{i} ({reg.quantity})"
        if reg.quantity not in known:
            problems.append(f"{where}: unknown quantity {reg.quantity!r}")
            continue
        quantity = quantities[reg.quantity]
        bit_table = reg.table in ("coil", "discrete")
        if bit_table != (reg.type == "bool"):
            problems.append(f"{where}: type {reg.type} cannot sit in the {reg.table} table")
        if reg.type != "bool":
            size = TYPE_FORMAT[reg.type][1]
            if reg.order is not None and reg.order not in ORDERS[size]:
                problems.append(f"{where}: byte order {reg.order!r} does not fit {reg.type}")
        if reg.scale == 0:
            problems.append(f"{where}: scale must not be 0")
        if reg.rollover is not None and not quantity.totalizer:
            problems.append(f"{where}: rollover is only for totalizers")
        if reg.address + reg.count - 1 > 65535:
            problems.append(f"{where}: runs past address 65535")
        for a in range(reg.address, reg.address + reg.count):
            other = used.get((reg.table, a))
            if other is not None:
                problems.append(f"{where}: address {a} overlaps modbus.registers.{other}")
                break
            used[(reg.table, a)] = i
    return problems


def rollover_of(register: Register) -> int | None:
    """The raw count at which a totalizer register wraps: declared, else 2**bits for unsigned ints."""
    if register.rollover is not None:
        return register.rollover
    if register.type in ("u16", "u32", "u64"):
        return int(2 ** (TYPE_FORMAT[register.type][1] * 8))
    return None


@cache
def load_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Load every profile in `directory`, keyed by `name@version` and by `name` (latest version)."""
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        profile = load_profile_file(path)
        if profile.ref in profiles:
            raise ProfileError(f"profile {path}: {profile.ref} is defined twice")
        profiles[profile.ref] = profile
        latest = profiles.get(profile.name)
        if latest is None or latest.version < profile.version:
            profiles[profile.name] = profile
    return profiles


def load_profile_file(path: Path) -> Profile:
    """Load one profile file; errors name the file and each offending key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"profile {path}: {exc}") from exc
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ProfileError(f"profile {path}: {details}") from exc


def find_profile(ref: str) -> Profile:
    """Resolve `name` or `name@version`; raise ProfileError listing the known names if absent."""
    profiles = load_profiles()
    if ref in profiles:
        return profiles[ref]
    known = ", ".join(sorted(k for k in profiles if "@" not in k))
    raise ProfileError(f"unknown device profile {ref!r}; known profiles: {known}")
