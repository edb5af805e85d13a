"""The live-status arithmetic, pure: bucket growth, periods, trend, tank state, health and conditions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from api.live import (
    NS,
    DeadLetterView,
    DeviceView,
    EventView,
    Health,
    TankView,
    Thresholds,
    bucket_increments,
    conditions,
    days_of_supply,
    device_health,
    local_midnight_ns,
    minutes_to_full,
    period_totals,
    tank_state,
)

H = 3600 * NS


def test_growth_inside_and_between_adjacent_buckets_counts_in_the_later_bucket() -> None:
    buckets = np.array([0, H, 2 * H], dtype=np.int64)
    first = np.array([10.0, 12.5, 15.0])
    last = np.array([12.0, 14.0, 15.5])
    _, inc = bucket_increments(buckets, first, last, None, H)
    # bucket 0: 2.0 inside; bucket 1: 0.5 across the hour + 1.5 inside; bucket 2: 1.0 across + 0.5
    assert inc.tolist() == pytest.approx([2.0, 2.0, 1.5])


def test_growth_across_a_silence_longer_than_a_bucket_is_not_attributed() -> None:
    buckets = np.array([0, 5 * H], dtype=np.int64)  # four silent hours between
    _, inc = bucket_increments(buckets, np.array([10.0, 50.0]), np.array([11.0, 52.0]), None, H)
    assert inc.tolist() == pytest.approx([1.0, 2.0])


def test_a_rollover_between_buckets_adds_the_wrap_and_a_reset_counts_the_new_reading() -> None:
    buckets = np.array([0, H, 2 * H], dtype=np.int64)
    first = np.array([99_990.0, 3.0, 0.2])
    last = np.array([99_998.0, 4.0, 0.7])
    _, inc = bucket_increments(buckets, first, last, 100_000.0, H)
    # wrap 99998 -> 3 is 5 m3; 4 -> 0.2 is a reset (not near the wrap): the new reading, 0.2
    assert inc.tolist() == pytest.approx([8.0, 5.0 + 1.0, 0.2 + 0.5])


def test_missing_first_or_last_values_are_skipped() -> None:
    buckets = np.array([0, H], dtype=np.int64)
    _, inc = bucket_increments(buckets, np.array([1.0, np.nan]), np.array([2.0, 3.0]), None, H)
    assert inc.tolist() == pytest.approx([1.0, 1.0])


def test_period_totals_use_shanghai_days_months_and_years() -> None:
    days = [dt.date(2025, 12, 31), dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 2, 2)]
    day_ns = np.array([local_midnight_ns(d) for d in days], dtype=np.int64)
    daily = np.array([100.0, 1.0, 2.0, 4.0])
    # 2026-02-02 08:30 local = 00:30 UTC
    now_ns = int(dt.datetime(2026, 2, 2, 0, 30, tzinfo=dt.UTC).timestamp() * NS)
    totals = period_totals(day_ns, daily, now_ns)
    assert (totals.today, totals.month, totals.year) == (4.0, 6.0, 7.0)


def test_trend_gives_minutes_to_full_only_when_rising() -> None:
    t = np.arange(7, dtype=np.int64) * 10 * 60 * NS  # every 10 minutes for an hour
    rising = 80.0 + 0.1 * np.arange(7) * 10  # 0.1 %/min, reaching 86 %
    assert minutes_to_full(t, rising) == pytest.approx((100 - 86) / 0.1)
    assert minutes_to_full(t, rising[::-1].copy()) is None
    assert minutes_to_full(t[:2], rising[:2]) is None


def test_days_of_supply() -> None:
    assert days_of_supply(35.0, 70.0, 7) == pytest.approx(3.5)
    assert days_of_supply(35.0, 0.0, 7) is None


@pytest.mark.parametrize(
    ("level", "to_full", "supply_days", "spilled", "state"),
    [
        (None, None, None, 0.0, "unknown"),
        (99.0, None, 10.0, 0.4, "overflowing"),
        (96.0, None, 10.0, 0.0, "about_to_overflow"),
        (80.0, 90.0, 10.0, 0.0, "about_to_overflow"),
        (80.0, 300.0, 10.0, 0.0, "normal"),
        (40.0, None, 0.5, 0.0, "about_to_run_dry"),
        (10.0, None, None, 0.0, "low"),
    ],
)
def test_tank_state(level: float | None, to_full: float | None, supply_days: float | None, spilled: float,
                    state: str) -> None:  # fmt: skip
    assert tank_state(level, to_full, supply_days, spilled, Thresholds()) == state


def test_device_health() -> None:
    limits = Thresholds(silent_intervals=5)
    assert device_health(None, 10 * NS, 60, limits).silent
    assert not device_health(0, 300 * NS, 60, limits).silent
    assert device_health(0, 301 * NS, 60, limits).silent


def test_conditions_have_stable_fingerprints_and_the_right_kinds() -> None:
    quiet = Health(0, 1000.0, True)
    found = conditions(
        "c",
        [TankView("rw", "about_to_overflow", 97.0, 20.0, None)],
        [
            DeviceView("pump", "river_pump", Health(0, 1.0, False), 7, 30.0),
            DeviceView("m", "water_meter", quiet, None, 60.0),
        ],
        [EventView("m", "volume_m3", 5 * NS, 812.5, 0.3)],
        [DeadLetterView("pump", "range", 3, 9 * NS, "flow too high")],
    )
    assert [(c.kind, c.severity, c.device) for c in found] == [
        ("overflow", "warning", "rw"),
        ("pump_fault", "critical", "pump"),
        ("device_silent", "warning", "m"),
        ("meter_reset", "warning", "m"),
        ("dead_letter", "warning", "pump"),
    ]
    assert found[3].fingerprint == f"c/m/meter_reset/volume_m3/{5 * NS}"
    assert found[0].fingerprint == "c/rw/overflow"
