"""The inventory facts written beside the readings: each device's place and interval, claims per month."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jieshui.inventory import load_site
from store.inventory_points import claim_month_m3, claim_points, device_info_points, inventory_lines
from store.lineprotocol import Point

SITE = load_site(Path(__file__).parents[2] / "examples" / "district.yaml")
NS = 10**9


def _claims() -> list[tuple[str, str, str, float]]:
    return [(c.id, cl.id, cl.unit, cl.value) for _, c in SITE.communities() for cl in c.claims]


def test_device_info_has_one_point_per_device_with_interval_and_tank_capacity() -> None:
    points = device_info_points(SITE, 123 * NS)
    devices = [(c.id, f, d) for _, c in SITE.communities() for f, d in c.devices()]
    assert len(points) == len(devices)
    for point, (community, facility, device) in zip(points, devices, strict=True):
        assert point.tags["community"] == community
        assert point.tags["facility"] == facility.id
        assert point.tags["device"] == device.id
        assert point.fields["interval_s"] == device.interval_s()
        assert point.time_ns == 123 * NS
        if point.tags["kind"] == "rainwater_system":
            assert point.fields["tank_capacity_m3"] == facility.tank_capacity_m3
        else:
            assert "tank_capacity_m3" not in point.fields
    car_wash = next(p for p in points if p.tags["kind"] == "car_wash")
    assert car_wash.fields["protocol"] == "mqtt"
    assert car_wash.fields["interval_s"] == 900  # the profile's report interval, not a poll interval


def test_claims_are_twelve_local_month_starts_with_the_month_share() -> None:
    points = claim_points(SITE)
    assert len(points) == 12 * len(_claims())
    daily = next(p for p in points if p.fields["unit"] == "m3/day")
    february = [p for p in points if p.tags == daily.tags][1]
    start = dt.datetime.fromtimestamp(february.time_ns / NS, dt.UTC)
    assert start == dt.datetime(2025, 1, 31, 16, 0, tzinfo=dt.UTC)  # 1 February 00:00 in Shanghai
    assert february.fields["claimed_month_m3"] == pytest.approx(float(daily.fields["value"]) * 28)
    yearly = [p for p in points if p.fields["unit"] == "m3/year" and p.tags["claim"] == "river-yearly"]
    per_year = sum(
        float(p.fields["claimed_month_m3"])
        for p in yearly
        if p.tags["community"] == yearly[0].tags["community"]
    )
    assert per_year == pytest.approx(float(yearly[0].fields["value"]))  # the months add up to the year
    per_car = [p for p in points if p.fields["unit"] in ("L/car", "L/person/day")]
    assert per_car
    assert all("claimed_month_m3" not in p.fields for p in per_car)


def test_claim_month_volumes() -> None:
    (_, community), *_ = SITE.communities()
    claim = community.claims[0].model_copy(update={"unit": "m3/year", "value": 366.0})
    assert claim_month_m3(claim, 2024, 2) == pytest.approx(29.0)  # a leap year's February
    assert claim_month_m3(claim.model_copy(update={"unit": "m3/day", "value": 2.0}), 2025, 4) == 60.0
    assert claim_month_m3(claim.model_copy(update={"unit": "L/car"}), 2025, 4) is None


def test_only_limits_to_the_collectors_communities_and_lines_encode() -> None:
    lines = inventory_lines(SITE, 5 * NS, only=("xinjing-6",))
    assert lines
    assert all(",community=xinjing-6," in line for line in lines)
    everything = inventory_lines(SITE, 5 * NS)
    assert len(everything) > len(lines)
    assert isinstance(device_info_points(SITE, 0)[0], Point)
