"""Facts from the site inventory that dashboards need beside the readings: each device's place and
interval (`device_info`) and each claimed saving per month (`claim`).

Grafana reads InfluxDB only, so a tank's capacity (to turn a level into stored m3) and a community's
claims (to draw measured reuse against them) must be points too. The collector writes them when it
starts and `jieshui simulate backfill` with its history (docs/schema.md). Both are idempotent: a claim
month is stamped at the start of that local month, so writing it again replaces it; `device_info` is
stamped when written, so its history records when the inventory changed.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Collection
from zoneinfo import ZoneInfo

from devices.profile import find_profile
from jieshui.inventory import Claim, Site
from store.lineprotocol import FieldValue, Point

SHANGHAI = ZoneInfo("Asia/Shanghai")


def device_info_points(site: Site, time_ns: int, only: Collection[str] = ()) -> list[Point]:
    """One `device_info` point per device: tags district, community, facility, device, kind; fields
    `profile`, `protocol`, `interval_s` (how often it reports), and `tank_capacity_m3` on the
    controllers of rainwater tanks."""
    points: list[Point] = []
    for district, community in site.communities():
        if only and community.id not in only:
            continue
        for facility, device in community.devices():
            profile = find_profile(device.profile)
            fields: dict[str, FieldValue] = {
                "profile": profile.ref,
                "protocol": device.connection.protocol,
                "interval_s": float(device.interval_s()),
            }
            if str(profile.kind) == "rainwater_system" and facility.tank_capacity_m3:
                fields["tank_capacity_m3"] = float(facility.tank_capacity_m3)
            tags = {
                "district": district.id,
                "community": community.id,
                "facility": facility.id,
                "device": device.id,
                "kind": str(profile.kind),
            }
            points.append(Point("device_info", tags, fields, time_ns))
    return points


def claim_month_m3(claim: Claim, year: int, month: int) -> float | None:
    """The volume a claim in m3/day or m3/year amounts to in one calendar month (pro rata by days);
    None for claims that are not volumes (L per car, L per person per day)."""
    days = calendar.monthrange(year, month)[1]
    if claim.unit == "m3/day":
        return claim.value * days
    if claim.unit == "m3/year":
        return claim.value * days / (366 if calendar.isleap(year) else 365)
    return None


def claim_points(site: Site, only: Collection[str] = ()) -> list[Point]:
    """Twelve `claim` points per claim, one at the start of each local month of the claim's year:
    tags district, community, facility, claim, measure; fields `value` and `unit` as claimed,
    `claimed_month_m3` for volume claims, `vehicle_class` when the claim names one."""
    points: list[Point] = []
    for district, community in site.communities():
        if only and community.id not in only:
            continue
        for claim in community.claims:
            tags = {
                "district": district.id,
                "community": community.id,
                "facility": claim.facility,
                "claim": claim.id,
                "measure": str(claim.measure),
            }
            for month in range(1, 13):
                start = dt.datetime(claim.year, month, 1, tzinfo=SHANGHAI)
                fields: dict[str, FieldValue] = {"value": float(claim.value), "unit": claim.unit}
                volume = claim_month_m3(claim, claim.year, month)
                if volume is not None:
                    fields["claimed_month_m3"] = round(volume, 6)
                if claim.vehicle_class is not None:
                    fields["vehicle_class"] = str(claim.vehicle_class)
                points.append(Point("claim", tags, fields, int(start.timestamp()) * 10**9))
    return points


def inventory_lines(site: Site, time_ns: int, only: Collection[str] = ()) -> list[str]:
    """Line protocol for both measurements."""
    return [p.to_line() for p in (*device_info_points(site, time_ns, only), *claim_points(site, only))]
