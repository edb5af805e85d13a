"""The daily digest job and the evidence check, between InfluxDB and the SQL table `evidence_digests`.

`record_digests` digests every settled day of every device not digested yet and appends the rows (a
day is settled once the collector refuses readings that old: `SETTLED_DAYS`); `check` recomputes the
digests of a year from InfluxDB and compares them with the rows, and the rows with their chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.db import Database, EvidenceDigest
from evidence.digest import (
    DayDigest,
    StoredDay,
    canonical_lines,
    compare,
    day_bounds_ns,
    digest_days,
    genesis,
    link,
    reading_day,
)
from jieshui.inventory import SHANGHAI, Site
from store.influx import InfluxStore, quote_ident, quote_literal

#: The collector dead-letters readings older than 7 days (collector.pipeline.Limits.max_past_s): a day
#: is final, and can be digested, once it ended more than that ago.
SETTLED_DAYS = 8
#: Days fetched per query (a month of 1-minute readings of one device is about 45,000 points).
CHUNK_DAYS = 31


def settled_through(today: dt.date) -> dt.date:
    """The last day the digest job may digest on `today` (Asia/Shanghai)."""
    return today - dt.timedelta(days=SETTLED_DAYS)


def devices_of(site: Site, community_id: str) -> list[tuple[str, str]]:
    """(device id, measurement) of every device of a community; KeyError if there is no such community."""
    for _, community in site.communities():
        if community.id == community_id:
            from devices.profile import find_profile

            return [(d.id, str(find_profile(d.profile).kind)) for _, d in community.devices()]
    raise KeyError(community_id)


def _chunks(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, dt.date]]:
    start = first
    while start <= last:
        end = min(last, start + dt.timedelta(days=CHUNK_DAYS - 1))
        yield start, end
        start = end + dt.timedelta(days=1)


def recompute(
    store: InfluxStore, measurement: str, community: str, device: str, first: dt.date, last: dt.date
) -> list[DayDigest]:
    """The digests of a device's days `first`..`last` from what InfluxDB holds now."""
    out: list[DayDigest] = []
    for a, b in _chunks(first, last):
        start, _ = day_bounds_ns(a)
        _, end = day_bounds_ns(b)
        series = store.query(
            f'SELECT * FROM {quote_ident(measurement)} WHERE "community" = {quote_literal(community)} '  # noqa: S608  # noqa: S608
            f'AND "device" = {quote_literal(device)} AND time > {start} AND time <= {end} GROUP BY *'
        )
        out.extend(digest_days(canonical_lines(series), a, b))
    return out


def first_day(store: InfluxStore, measurement: str, community: str, device: str) -> dt.date | None:
    """The Asia/Shanghai day of a device's first stored reading, or None."""
    rows = store.query(
        f'SELECT * FROM {quote_ident(measurement)} WHERE "community" = {quote_literal(community)} '  # noqa: S608
        f'AND "device" = {quote_literal(device)} ORDER BY time ASC LIMIT 1'
    )
    if not rows or len(rows[0]) == 0:
        return None
    t = int(rows[0].time.astype("int64")[0])
    return reading_day(t)


def _stored(db: Database, community: str, device: str, through: dt.date | None = None) -> list[StoredDay]:
    with db.session() as s:
        query = select(EvidenceDigest).where(
            EvidenceDigest.community == community, EvidenceDigest.device == device
        )
        if through is not None:
            query = query.where(EvidenceDigest.day <= through)
        rows = s.scalars(query.order_by(EvidenceDigest.day)).all()
        return [StoredDay(r.day, r.points, r.digest, r.chain) for r in rows]


def record_digests(
    db: Database, store: InfluxStore, site: Site, community: str, through: dt.date, now: dt.datetime
) -> dict[str, int]:
    """Digest every day of every device of `community` from the day after its last digest (or its first
    reading) through `through`, but never past the last settled day at `now`; append the rows. Returns
    the days added per device (0 for a device another run digested at the same time)."""
    through = min(through, settled_through(now.astimezone(SHANGHAI).date()))
    added: dict[str, int] = {}
    for device, measurement in devices_of(site, community):
        stored = _stored(db, community, device)
        if stored:
            start, previous = stored[-1].day + dt.timedelta(days=1), stored[-1].chain
        else:
            found = first_day(store, measurement, community, device)
            if found is None:
                added[device] = 0
                continue
            start, previous = found, genesis(community, device)
        if start > through:
            added[device] = 0
            continue
        days = recompute(store, measurement, community, device, start, through)
        try:
            with db.session() as s:
                for day in days:
                    previous = link(previous, day.digest)
                    s.add(EvidenceDigest(community=community, device=device, day=day.day, points=day.points,
                                         digest=day.digest, chain=previous, computed_at=now))  # fmt: skip
        except IntegrityError:  # another run digested these days first: its rows stand, the chain holds
            added[device] = 0
            continue
        added[device] = len(days)
    return added


class FindingOut(BaseModel):
    """A day whose evidence no longer holds."""

    device: str
    day: dt.date
    kind: str  # edited | deleted | inserted | chain_broken | gap
    stored_points: int
    points_now: int
    message: str


class DeviceEvidence(BaseModel):
    """What was checked for one device."""

    device: str
    days_checked: int
    first_day: dt.date | None
    last_day: dt.date | None


class EvidenceReport(BaseModel):
    """The evidence check of a community's year (docs/evidence.md)."""

    community: str
    year: int
    ok: bool  # no finding
    devices: list[DeviceEvidence]
    findings: list[FindingOut]

    def changed_days(self) -> dict[str, set[dt.date]]:
        """For every device with digested days in the year, the days whose readings no longer match
        their digest or whose row was altered (empty: all intact); what verification takes."""
        out: dict[str, set[dt.date]] = {d.device: set() for d in self.devices if d.days_checked}
        for f in self.findings:
            out.setdefault(f.device, set()).add(f.day)
        return out


def check(db: Database, store: InfluxStore, site: Site, community: str, year: int) -> EvidenceReport:
    """Recompute the digests of `year`'s digested days from InfluxDB and compare them with the rows;
    check each row's chain from the device's first row."""
    devices, findings = [], []
    year_first, year_last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    for device, measurement in devices_of(site, community):
        stored = _stored(db, community, device, through=year_last)
        in_year = [r for r in stored if r.day >= year_first]
        if not in_year:
            devices.append(DeviceEvidence(device=device, days_checked=0, first_day=None, last_day=None))
            continue
        now = recompute(store, measurement, community, device, in_year[0].day, in_year[-1].day)
        for f in compare(community, device, stored, now):
            if f.day >= year_first:
                findings.append(FindingOut(device=device, **f.__dict__))
        devices.append(DeviceEvidence(device=device, days_checked=len(in_year), first_day=in_year[0].day,
                                      last_day=in_year[-1].day))  # fmt: skip
    return EvidenceReport(community=community, year=year, ok=not findings, devices=devices, findings=findings)
