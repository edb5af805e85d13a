"""The meter registry: the meters behind a community's devices (current and past) and the replacement
events with their readings (evidence.meters, docs/api.md "Meter registry").

Every role reads them (a manager only for their communities); a community's manager and admins record
them. What is recorded here joins the registry every route sees (`ApiContext.registry_now`), so
verification run through the API counts consumption across a recorded swap from its readings. The
collector reads only the site inventory: a swap recorded here reaches its deltas once it is added to
the inventory's `replacements:` too (docs/verification.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Principal, Role, audit
from api.db import Meter, MeterReplacement
from api.deps import ApiContext, CtxDep, PrincipalDep, ScopedDep, scoped_in
from api.errors import ApiError
from evidence.meters import local_date, meter_at, meter_due
from jieshui.inventory import (
    FIRST_YEAR,
    LAST_YEAR,
    SHANGHAI,
    AccuracyClass,
    Device,
    MeterInfo,
    NominalDn,
    RegistryDate,
    RegistryText,
    Replacement,
)

router = APIRouter(tags=["meters"])

DeviceId = Annotated[str, Path(min_length=1, max_length=64, description="inventory id, e.g. master-meter")]


def _within_years(t: dt.datetime) -> dt.datetime:
    if not FIRST_YEAR <= t.year <= LAST_YEAR:
        raise ValueError(f"must be within {FIRST_YEAR}-{LAST_YEAR}")
    return t


Instant = Annotated[AwareDatetime, AfterValidator(_within_years)]
#: A reading of a totalizer: finite, not negative, and below what any register of ours holds.
Reading = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
#: Free text without control characters but line breaks and tabs (PostgreSQL refuses a NUL).
Note = Annotated[str, Field(max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeterIn(_In):
    """The meter in place on a device: recorded anew, or its data corrected (the same serial)."""

    serial: RegistryText
    nominal_dn: NominalDn = Field(description="nominal size DN, mm (GB/T 778.1)")
    accuracy_class: AccuracyClass = "2"
    installed_on: RegistryDate = Field(description="local date (Asia/Shanghai)")
    calibrated_on: RegistryDate | None = Field(default=None, description="the last verification, if any")


class NewMeterIn(_In):
    """The meter a replacement installs (installed on the local date of the replacement)."""

    nominal_dn: NominalDn
    accuracy_class: AccuracyClass = "2"
    calibrated_on: RegistryDate | None = None


class ReplacementIn(_In):
    """A meter swapped on a device, for one totalizer, with the readings of both meters."""

    quantity: str = Field(min_length=1, max_length=64, description="the totalizer, e.g. volume_m3")
    replaced_at: Instant = Field(description="readings stamped at or after it are the new meter's")
    old_serial: RegistryText
    old_final_reading: Reading
    new_serial: RegistryText
    new_first_reading: Reading
    note: Note = ""
    new_meter: NewMeterIn | None = Field(default=None, description="record the new meter in the registry too")


class MeterPublic(_Out):
    """A meter in the registry, with the day it must be replaced or verified again (JJG 162)."""

    serial: str
    nominal_dn: int
    accuracy_class: str
    installed_on: dt.date
    calibrated_on: dt.date | None
    removed_at: dt.datetime | None
    source: Literal["inventory", "api"]  # the site inventory's, or recorded through the API
    recorded_at: dt.datetime | None
    recorded_by: str | None  # API key id
    rule: Literal["service_life", "calibration"]
    due: dt.date  # the last local day it may serve without replacement (service_life) or verification


class DeviceMeters(_Out):
    device: str
    facility: str
    meter: MeterPublic | None  # the meter in place
    past_meters: list[MeterPublic]


class ReplacementPublic(_Out):
    id: int | None  # None: from the site inventory
    device: str
    quantity: str
    replaced_at: dt.datetime
    old_serial: str
    old_final_reading: float
    new_serial: str
    new_first_reading: float
    note: str
    source: Literal["inventory", "api"]
    recorded_at: dt.datetime | None
    recorded_by: str
    superseded: bool  # a later record of the same quantity and time replaces it (a correction)


def _meter_rows(s: Session, community: str, device: str | None = None) -> list[Meter]:
    query = select(Meter).where(Meter.community == community)
    if device is not None:
        query = query.where(Meter.device == device)
    return list(s.scalars(query.order_by(Meter.id)))


def _meter_public(meter: MeterInfo, row: Meter | None) -> MeterPublic:
    due = meter_due(meter.nominal_dn, meter.installed_on, meter.calibrated_on)
    return MeterPublic(
        serial=meter.serial,
        nominal_dn=meter.nominal_dn,
        accuracy_class=meter.accuracy_class,
        installed_on=meter.installed_on,
        calibrated_on=meter.calibrated_on,
        removed_at=meter.removed_at.astimezone(dt.UTC) if meter.removed_at else None,
        source="api" if row is not None else "inventory",
        recorded_at=row.recorded_at if row is not None else None,
        recorded_by=row.recorded_by if row is not None else None,
        rule=due.rule,
        due=due.due,
    )


def _device_meters(facility: str, device: Device, rows: dict[str, Meter]) -> DeviceMeters:
    return DeviceMeters(
        device=device.id,
        facility=facility,
        meter=_meter_public(device.meter, rows.get(device.meter.serial)) if device.meter else None,
        past_meters=[_meter_public(m, rows.get(m.serial)) for m in device.past_meters],
    )


@router.get("/communities/{community_id}/meters", response_model=list[DeviceMeters])
def list_meters(ctx: CtxDep, scoped: ScopedDep) -> list[DeviceMeters]:
    """Every device of the community with its meter in place and its past meters: the inventory's and
    those recorded through the API (which win for the same serial)."""
    with ctx.db.session() as s:
        rows = _meter_rows(s, scoped.community.id)
    out = []
    for facility, device in scoped.community.devices():
        mine = {r.serial: r for r in rows if r.device == device.id}
        out.append(_device_meters(facility.id, device, mine))
    return out


def _not_after(field: str, value: dt.date | dt.datetime, now: dt.datetime) -> None:
    later = value > now if isinstance(value, dt.datetime) else value > local_date(now)
    if later:
        raise ApiError("date_in_future", field=field, value=value.isoformat(), now=now.isoformat())


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), SHANGHAI)


@router.put("/communities/{community_id}/devices/{device_id}/meter", response_model=DeviceMeters)
def set_meter(
    ctx: CtxDep, principal: PrincipalDep, scoped: ScopedDep, device_id: DeviceId, body: MeterIn
) -> DeviceMeters:
    """Record the meter in place on a device (managers of the community, admins). The same serial again
    corrects its data (a new verification date, say); another serial takes the place of the recorded
    one, which counts as removed at the new one's installation. A swap whose readings are known is
    better recorded as a replacement (POST .../replacements): without them the drop in the readings
    is an unexplained reset."""
    principal.require(Role.MANAGER)
    _, device, _ = scoped.device(device_id)
    now = ctx.now()
    _not_after("installed_on", body.installed_on, now)
    if body.calibrated_on is not None:
        _not_after("calibrated_on", body.calibrated_on, now)
    community = scoped.community.id
    with ctx.db.session() as s:
        rows = _meter_rows(s, community, device.id)
        row = next((r for r in rows if r.serial == body.serial), None)
        past = next((m for m in device.past_meters if m.serial == body.serial), None)
        removed_at = row.removed_at if row is not None else past.removed_at if past is not None else None
        if removed_at is not None:
            raise ApiError(
                "meter_removed", serial=body.serial, device=device.id, removed_at=removed_at.isoformat()
            )
        if row is None:
            for other in rows:
                if other.removed_at is None:  # the new one took its place (never before it was installed)
                    other.removed_at = _midnight(max(body.installed_on, other.installed_on))
            row = Meter(community=community, device=device.id, serial=body.serial)
            s.add(row)
        row.nominal_dn = body.nominal_dn
        row.accuracy_class = body.accuracy_class
        row.installed_on = body.installed_on
        row.calibrated_on = body.calibrated_on
        row.recorded_at = now
        row.recorded_by = principal.key_id
        s.flush()
        target = f"community/{community}/device/{device.id}"
        detail = body.model_dump(mode="json")
        audit(s, principal.key_id, principal.role, "meter.set", target, now, meter_id=row.id, **detail)
    ctx.registry_cache.invalidate("registry")
    return _fresh_device_meters(ctx, principal, community, device.id)


def _fresh_device_meters(
    ctx: ApiContext, principal: Principal, community: str, device_id: str
) -> DeviceMeters:
    """The device's meters as the registry has them now (after a write)."""
    facility, device, _ = scoped_in(ctx.registry(), principal, community).device(device_id)
    with ctx.db.session() as s:
        rows = {r.serial: r for r in _meter_rows(s, community, device_id)}
    return _device_meters(facility.id, device, rows)


def _replacement_public(row: MeterReplacement, superseded: bool) -> ReplacementPublic:
    return ReplacementPublic(
        id=row.id,
        device=row.device,
        quantity=row.quantity,
        replaced_at=row.replaced_at,
        old_serial=row.old_serial,
        old_final_reading=row.old_final_reading,
        new_serial=row.new_serial,
        new_first_reading=row.new_first_reading,
        note=row.note,
        source="api",
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        superseded=superseded,
    )


def _inventory_public(device: str, r: Replacement) -> ReplacementPublic:
    return ReplacementPublic(
        id=None,
        device=device,
        quantity=r.quantity,
        replaced_at=r.replaced_at.astimezone(dt.UTC),
        old_serial=r.old_serial,
        old_final_reading=r.old_final_reading,
        new_serial=r.new_serial,
        new_first_reading=r.new_first_reading,
        note=r.note or "",
        source="inventory",
        recorded_at=r.recorded_at.astimezone(dt.UTC) if r.recorded_at else None,
        recorded_by=r.recorded_by,
        superseded=False,
    )


@router.get(
    "/communities/{community_id}/devices/{device_id}/replacements", response_model=list[ReplacementPublic]
)
def list_replacements(ctx: CtxDep, scoped: ScopedDep, device_id: DeviceId) -> list[ReplacementPublic]:
    """The device's meter replacements, the inventory's and those recorded through the API, by time; a
    record followed by another of the same quantity and time is marked superseded (the later counts)."""
    _, device, _ = scoped.device(device_id)
    inventory: list[ReplacementPublic] = []
    try:
        _, base = ctx.site.community(scoped.community.id)
    except KeyError:  # a community from the application forms: no inventory devices
        base = None
    for _, d in base.devices() if base is not None else ():
        if d.id == device.id:
            inventory += [_inventory_public(d.id, r) for r in d.replacements]
    with ctx.db.session() as s:
        rows = list(
            s.scalars(
                select(MeterReplacement)
                .where(
                    MeterReplacement.community == scoped.community.id, MeterReplacement.device == device.id
                )
                .order_by(MeterReplacement.id)
            )
        )
    records = [*inventory, *(_replacement_public(r, False) for r in rows)]
    last = {(r.quantity, r.replaced_at): i for i, r in enumerate(records)}
    out = [
        r.model_copy(update={"superseded": last[(r.quantity, r.replaced_at)] != i})
        for i, r in enumerate(records)
    ]
    return sorted(out, key=lambda r: (r.replaced_at, r.quantity, r.recorded_at or r.replaced_at))


@router.post(
    "/communities/{community_id}/devices/{device_id}/replacements",
    response_model=ReplacementPublic,
    status_code=201,
)
def record_replacement(
    ctx: CtxDep, principal: PrincipalDep, scoped: ScopedDep, device_id: DeviceId, body: ReplacementIn
) -> ReplacementPublic:
    """Record a meter swapped on a device with the old meter's final reading and the new one's first
    (managers of the community, admins); who and when are the caller and now. A record of the same
    quantity and time as an earlier one supersedes it (a correction). The registry follows: the old
    meter counts as removed at `replaced_at`, and with `new_meter` the new one is recorded as the
    meter in place."""
    principal.require(Role.MANAGER)
    _, device, profile = scoped.device(device_id)
    quantity = profile.quantity.get(body.quantity)
    if quantity is None or not quantity.totalizer:
        known = ", ".join(q.name for q in profile.quantities if q.totalizer)
        raise ApiError("not_a_totalizer", device=device.id, quantity=body.quantity, known=known)
    now = ctx.now()
    _not_after("replaced_at", body.replaced_at, now)
    if body.new_meter is not None and body.new_meter.calibrated_on is not None:
        _not_after("new_meter.calibrated_on", body.new_meter.calibrated_on, now)
    if body.old_serial == body.new_serial:
        raise ApiError("replacement_same_meter", serial=body.old_serial)
    in_place = meter_at(device, body.replaced_at)
    if in_place is not None and in_place.serial not in (body.old_serial, body.new_serial):
        raise ApiError(
            "replacement_conflict",
            device=device.id,
            time=body.replaced_at.isoformat(),
            serial=in_place.serial,
            old_serial=body.old_serial,
        )
    community = scoped.community.id
    with ctx.db.session() as s:
        row = MeterReplacement(
            community=community,
            device=device.id,
            quantity=body.quantity,
            replaced_at=body.replaced_at,
            old_serial=body.old_serial,
            old_final_reading=body.old_final_reading,
            new_serial=body.new_serial,
            new_first_reading=body.new_first_reading,
            note=body.note,
            recorded_at=now,
            recorded_by=principal.key_id,
        )
        s.add(row)
        _follow_swap(s, community, device, body, now, principal.key_id)
        s.flush()
        target = f"community/{community}/device/{device.id}"
        detail = body.model_dump(mode="json", exclude={"note"})
        audit(
            s,
            principal.key_id,
            principal.role,
            "meter.replacement",
            target,
            now,
            replacement_id=row.id,
            **detail,
        )
    ctx.registry_cache.invalidate("registry")
    return _replacement_public(row, False)


def _follow_swap(
    s: Session, community: str, device: Device, body: ReplacementIn, now: dt.datetime, who: str
) -> None:
    """The registry after a swap: the old meter removed at its time (copied from the inventory when only
    the inventory has it), the new one in place when the record describes it."""
    rows = {r.serial: r for r in _meter_rows(s, community, device.id)}
    old = rows.get(body.old_serial)
    registered = [*device.past_meters, *([device.meter] if device.meter else [])]
    known = next((m for m in registered if m.serial == body.old_serial), None)
    if old is None and known is not None:
        old = Meter(
            community=community,
            device=device.id,
            serial=known.serial,
            nominal_dn=known.nominal_dn,
            accuracy_class=known.accuracy_class,
            installed_on=known.installed_on,
            calibrated_on=known.calibrated_on,
            recorded_at=now,
            recorded_by=who,
        )
        s.add(old)
    if old is not None:
        old.removed_at = body.replaced_at
    if body.new_meter is None:
        return
    new = rows.get(body.new_serial)
    if new is None:
        new = Meter(community=community, device=device.id, serial=body.new_serial)
        s.add(new)
    new.nominal_dn = body.new_meter.nominal_dn
    new.accuracy_class = body.new_meter.accuracy_class
    new.installed_on = local_date(body.replaced_at)
    new.calibrated_on = body.new_meter.calibrated_on
    new.recorded_at = now
    new.recorded_by = who
