"""The meter registry's logic: consumption across a recorded meter swap, the service life and calibration
interval of a water meter, and the registry recorded through the API merged into the site inventory.

A replacement event names, for one totalizer quantity of a device, when the meter was swapped, the old
meter's final reading and the new meter's first one. Readings stamped before `replaced_at` are the old
meter's, readings at or after it the new one's, so the swap falls in the interval (last old reading,
first new reading]. With the last old reading L, the old meter's final reading F_old, the new meter's
first reading F_new and the first new reading R, that interval used

    (F_old - L) + (R - F_new)

(each part at least 0) instead of the guess the totalizers make without a record (a drop that is no
rollover: a replaced meter starting from 0, so R). The collector (`collector.pipeline.totalize`) and
verification (`verification.checks.consumption`) both apply it; verification also checks the record
against the readings (`swap_problems`).

Service life and calibration (JJG 162, 饮用冷水水表检定规程; docs/verification.md): a meter of DN 25
or less is used for at most 6 years, of DN 32-50 for at most 4 (first verification only, then replaced);
a meter larger than DN 50 is verified again every 2 years.

Pure functions of plain values, but `with_recorded_meters`, which reads the attributes of api.db's
`Meter` and `MeterReplacement` rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from jieshui.inventory import SHANGHAI, Device, MeterInfo, Replacement, Site

if TYPE_CHECKING:
    from api.db import Meter, MeterReplacement

NS = 10**9
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: How far a recorded reading may sit on the wrong side of a metered one before the record contradicts
#: the data, in the quantity's unit: a dial read to the coarsest register step of the profiles (0.01
#: m3), rounded by the person writing it down.
READING_TOLERANCE = 0.05


@dataclass(frozen=True, order=True)
class Swap:
    """A recorded meter replacement as the totalizer arithmetic needs it (times in UTC ns)."""

    time_ns: int
    quantity: str
    old_final: float  # the old meter's final reading
    new_first: float  # the new meter's first reading


def instant_ns(t: dt.datetime) -> int:
    """An aware instant in UTC nanoseconds, exactly (a float timestamp x 1e9 is off by up to ~200 ns,
    enough to put a swap stamped at a reading's time on the wrong side of it)."""
    return (t - EPOCH) // dt.timedelta(microseconds=1) * 1000


def swap_of(replacement: Replacement) -> Swap:
    """The arithmetic's view of an inventory replacement."""
    return Swap(
        instant_ns(replacement.replaced_at),
        replacement.quantity,
        replacement.old_final_reading,
        replacement.new_first_reading,
    )


def swaps_of(device: Device) -> tuple[Swap, ...]:
    """Every recorded replacement of the device, in time order."""
    return tuple(sorted(swap_of(r) for r in device.replacements))


def swaps_between(swaps: Sequence[Swap], quantity: str, after_ns: int, upto_ns: int) -> list[Swap]:
    """The swaps of `quantity` inside the interval (after_ns, upto_ns], in time order: those between a
    reading of the old meter and one of the new."""
    return sorted(s for s in swaps if s.quantity == quantity and after_ns < s.time_ns <= upto_ns)


def interval_use(last: float, current: float, swaps: Sequence[Swap]) -> float:
    """Use over an interval holding recorded swaps (time order): (F_old - L) + (R - F_new) for one,
    chained through each meter in between for several; a part the record contradicts counts 0, never
    negative (`swap_problems` names it)."""
    use = max(swaps[0].old_final - last, 0.0)
    for before, after in pairwise(swaps):
        use += max(after.old_final - before.new_first, 0.0)
    return use + max(current - swaps[-1].new_first, 0.0)


SwapProblem = Literal["final_below_last", "first_above_next", "no_drop"]


def swap_problems(
    last: float, current: float, swaps: Sequence[Swap], tolerance: float = READING_TOLERANCE
) -> list[tuple[SwapProblem, Swap]]:
    """Where recorded swaps contradict the readings around them (L before, R after):

    - `final_below_last`: the old meter's final reading is below a reading it already showed (L, or the
      previous swap's first reading);
    - `first_above_next`: the new meter's first reading is above the first reading after the swap (R);
    - `no_drop`: the new meter started below L, yet the readings do not fall back across the swap (the
      record's time, or the record itself, is wrong)."""
    problems: list[tuple[SwapProblem, Swap]] = []
    before = last
    for swap in swaps:
        if swap.old_final < before - tolerance:
            problems.append(("final_below_last", swap))
        before = swap.new_first
    if current < swaps[-1].new_first - tolerance:
        problems.append(("first_above_next", swaps[-1]))
    if swaps[-1].new_first < last - tolerance and current >= last:
        problems.append(("no_drop", swaps[0]))
    return problems


# --- service life and calibration -----------------------------------------------------------------

#: JJG 162: water meters up to DN 25 serve at most 6 years, up to DN 50 at most 4 (first verification
#: only, replaced when the time is up); larger ones are verified again every 2 years.
SERVICE_LIFE_YEARS: tuple[tuple[int, int], ...] = ((25, 6), (50, 4))
CALIBRATION_YEARS = 2
#: Relative maximum permissible error in the upper flow zone by accuracy class (GB/T 778.1, ISO 4064).
ACCURACY_BY_CLASS = {"1": 0.01, "2": 0.02}


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later (29 February: the 28th in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class MeterDue:
    """When a meter must be replaced (`service_life`) or verified again (`calibration`)."""

    rule: Literal["service_life", "calibration"]
    years: int
    since: dt.date  # installation (service life) or the last calibration (installation if none recorded)
    due: dt.date  # the last day it may be in use without replacement or calibration

    def overdue(self, on: dt.date) -> bool:
        """Past the due date on `on`: a meter at exactly its 6 years (or 2) is still within them."""
        return on > self.due


def meter_due(nominal_dn: int, installed_on: dt.date, calibrated_on: dt.date | None) -> MeterDue:
    """The rule that applies to a meter of this size and the day it falls due (JJG 162)."""
    for largest_dn, years in SERVICE_LIFE_YEARS:
        if nominal_dn <= largest_dn:
            return MeterDue("service_life", years, installed_on, add_years(installed_on, years))
    since = calibrated_on if calibrated_on is not None else installed_on
    return MeterDue("calibration", CALIBRATION_YEARS, since, add_years(since, CALIBRATION_YEARS))


def local_date(t: dt.datetime) -> dt.date:
    """The Asia/Shanghai date of an aware instant."""
    return t.astimezone(SHANGHAI).date()


def meters_in_service(
    device: Device, first_day: dt.date, last_day: dt.date
) -> list[tuple[MeterInfo, dt.date]]:
    """The registered meters of the device that served during [first_day, last_day] (local dates), each
    with the day it is judged on: `last_day`, or the day it was removed if that came earlier."""
    out: list[tuple[MeterInfo, dt.date]] = []
    for meter in [*device.past_meters, *([device.meter] if device.meter else [])]:
        removed = local_date(meter.removed_at) if meter.removed_at is not None else None
        if meter.installed_on > last_day or (removed is not None and removed < first_day):
            continue
        out.append((meter, min(last_day, removed) if removed is not None else last_day))
    return sorted(out, key=lambda pair: pair[0].installed_on)


def meter_at(device: Device, t: dt.datetime) -> MeterInfo | None:
    """The registered meter in place on the device at instant `t` (installed by its local date, not
    removed before `t`; one removed exactly at `t` is the meter a swap at `t` took out), if any."""
    day = local_date(t)
    candidates = [
        m
        for m in [*device.past_meters, *([device.meter] if device.meter else [])]
        if m.installed_on <= day and (m.removed_at is None or m.removed_at >= t)
    ]
    return max(candidates, key=lambda m: m.installed_on) if candidates else None


# --- the registry recorded through the API, merged into the inventory -----------------------------


def _meter_info(row: Meter) -> MeterInfo:
    return MeterInfo(
        serial=row.serial,
        nominal_dn=row.nominal_dn,
        accuracy_class=row.accuracy_class,
        installed_on=row.installed_on,
        calibrated_on=row.calibrated_on,
        removed_at=row.removed_at,
    )


def _replacement(row: MeterReplacement) -> Replacement:
    return Replacement(
        quantity=row.quantity,
        replaced_at=row.replaced_at,
        old_serial=row.old_serial,
        old_final_reading=row.old_final_reading,
        new_serial=row.new_serial,
        new_first_reading=row.new_first_reading,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        note=row.note or None,
    )


def merge_device(device: Device, meters: Iterable[MeterInfo], replacements: Iterable[Replacement]) -> Device:
    """The device with meters and replacements recorded elsewhere (the API's SQL tables) laid over the
    inventory's. A recorded meter replaces the inventory's of the same serial, and a current one (no
    `removed_at`) becomes the device's meter, the inventory's current one then counting as removed when
    it was installed. A replacement supersedes an earlier record of the same quantity and time (a
    correction: the later record wins, SQL rows in the order they were recorded, after the inventory's)."""
    meters = list(meters)
    replacements = list(replacements)
    if not meters and not replacements:
        return device
    by_serial = {m.serial: m for m in [*device.past_meters, *([device.meter] if device.meter else [])]}
    for m in meters:
        by_serial[m.serial] = m
    current = [m for m in by_serial.values() if m.removed_at is None]
    if len(current) > 1:  # the inventory's meter and one recorded since: the recorded one is in place
        newest = next((m for m in reversed(meters) if m.removed_at is None), current[-1])
        installed = dt.datetime.combine(newest.installed_on, dt.time(), SHANGHAI)
        for m in current:
            if m is not newest:
                by_serial[m.serial] = m.model_copy(update={"removed_at": installed})
        current = [newest]
    events = {(r.quantity, r.replaced_at): r for r in [*device.replacements, *replacements]}
    return device.model_copy(
        update={
            "meter": current[0] if current else None,
            "past_meters": sorted(
                (m for m in by_serial.values() if m.removed_at is not None), key=lambda m: m.installed_on
            ),
            "replacements": sorted(events.values(), key=lambda r: r.replaced_at),
        }
    )


def with_recorded_meters(
    site: Site, meters: Iterable[Meter], replacements: Iterable[MeterReplacement]
) -> Site:
    """The site with the meter registry and replacement events recorded through the API merged into its
    devices (`merge_device`); rows of communities or devices the site does not have are left out."""
    meter_rows: dict[tuple[str, str], list[MeterInfo]] = {}
    for row in sorted(meters, key=lambda r: r.id):
        meter_rows.setdefault((row.community, row.device), []).append(_meter_info(row))
    event_rows: dict[tuple[str, str], list[Replacement]] = {}
    for event in sorted(replacements, key=lambda r: r.id):
        event_rows.setdefault((event.community, event.device), []).append(_replacement(event))
    touched = {c for c, _ in meter_rows} | {c for c, _ in event_rows}
    if not touched:
        return site
    districts = []
    for district in site.districts:
        communities = []
        for community in district.communities:
            if community.id in touched:
                facilities = [
                    f.model_copy(
                        update={
                            "devices": [
                                merge_device(
                                    d,
                                    meter_rows.get((community.id, d.id), []),
                                    event_rows.get((community.id, d.id), []),
                                )
                                for d in f.devices
                            ]
                        }
                    )
                    for f in community.facilities
                ]
                community = community.model_copy(update={"facilities": facilities})
            communities.append(community)
        districts.append(district.model_copy(update={"communities": communities}))
    return site.model_copy(update={"districts": districts})
