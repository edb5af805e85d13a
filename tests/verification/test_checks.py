"""The pure verification checks on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from verification import checks

NS = 10**9
HOUR = 3600 * NS
# 2025-01-01 00:00 Asia/Shanghai in UTC ns
Y2025 = (20089 * 86400 - 8 * 3600) * NS
FIRST_DAY = 20089


def test_consumption_handles_growth_rollover_reset_and_duplicates() -> None:
    t = np.array([1, 2, 2, 3, 4, 5], dtype=np.int64) * HOUR
    v = np.array([6550.0, 6553.0, 6553.0, 1.0, 0.5, 2.0])
    use = checks.consumption(t, v, rollover=6553.6)
    np.testing.assert_allclose(use.delta, [3.0, 1.6, 0.5, 1.5])  # 6553 -> 1 wraps; 1 -> 0.5 is a reset
    assert use.rollovers == [1]
    assert use.resets == [2]
    assert use.duplicates == 1
    assert (use.delta >= 0).all()


def test_daily_sums_follow_shanghai_days_and_interval_ends() -> None:
    # an interval ending exactly at local midnight belongs to the day before
    t = np.array([Y2025 + HOUR, Y2025 + 24 * HOUR, Y2025 + 25 * HOUR], dtype=np.int64)
    sums = checks.daily_sum(t, np.array([1.0, 2.0, 4.0]), FIRST_DAY, 2)
    assert sums.tolist() == [3.0, 4.0]


def test_sufficiency_needs_half_a_day_and_90_percent_of_every_month() -> None:
    hours = np.arange(1, 24 * 31 + 1)
    keep = ~((hours > 24 * 3) & (hours <= 24 * 6))  # Jan 4-6 silent: 28 of 31 days valid = 90.3 %
    t = (Y2025 + hours[keep] * HOUR).astype(np.int64)
    months = np.ones(31, dtype=np.int64)
    ok = checks.sufficiency(t, 3600, FIRST_DAY, 31, months)
    assert ok.valid_share == pytest.approx(28 / 31)
    assert ok.sufficient
    assert [(b - a) // HOUR for a, b in ok.gaps] == [73]
    keep[24 * 7 : 24 * 8] = False  # one more silent day: 27/31 = 87 %
    t2 = (Y2025 + hours[keep] * HOUR).astype(np.int64)
    assert not checks.sufficiency(t2, 3600, FIRST_DAY, 31, months).sufficient


def test_spikes_are_median_plus_three_iqr() -> None:
    daily = np.array([10.0, 11, 9, 10, 12, 10, 11, 9, 10, 95])
    assert checks.iqr_spikes(daily).tolist() == [9]
    assert checks.iqr_spikes(daily[:5]).tolist() == []  # too few days to judge


def test_flat_runs_need_a_moving_neighbour() -> None:
    daily = np.array([1.0, 0, 0, 0, 1, 0, 0, 0, 0])
    moving = np.array([True, True, True, True, True, False, False, False, False])
    assert checks.flat_runs(daily, moving) == [(1, 4)]


def test_runoff_diverts_the_first_flush_once_per_event() -> None:
    rain = np.array([10.0, 5.0, 0.0, 2.0])  # a two-day event, a dry day, a small event
    runoff = checks.runoff_m3(rain, [(1000.0, 0.8, 3.0)])
    # event 1: 15 mm - 3 mm diverted on its first day; event 2: 2 mm all diverted
    np.testing.assert_allclose(runoff, [1000 * 0.8 * 7 / 1000, 1000 * 0.8 * 5 / 1000, 0.0, 0.0])


def test_window_excess_finds_the_worst_window() -> None:
    supply = np.array([1.0, 1, 10, 10, 1])
    bound = np.array([2.0, 2, 2, 2, 2])
    excess, start, length = checks.max_window_excess(supply, bound, windows=(1, 2, 5))
    assert (excess, start, length) == (16.0, 2, 2)
