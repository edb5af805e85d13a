"""The live world's ground truth and determinism: the same seed gives the same world; a live run's
truth is what the model's days say flowed between its start and stop."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from simulators.live import LiveWorld, SimClock
from simulators.model import SiteModel, local_midnight_ns
from tests.simulators.conftest import make_site

DAY_NS = 86400 * 10**9


def test_same_seed_same_world_other_seed_other_world(tmp_path: Path) -> None:
    site = make_site(tmp_path, "tcp")
    runs = [SiteModel(site, seed=s) for s in (11, 11, 12)]
    days = [[d for i in range(3) for d in m.day(dt.date(2025, 6, 10) + dt.timedelta(days=i))] for m in runs]
    for a, b in zip(days[0], days[1], strict=True):
        for name in a.values:
            np.testing.assert_array_equal(a.values[name], b.values[name])
    master = [next(d for d in run if d.device == "master-meter").values["volume_m3"] for run in days]
    assert not np.array_equal(master[0], master[2])


def test_live_truth_equals_the_model_days_it_covered(tmp_path: Path) -> None:
    site = make_site(tmp_path, "tcp")
    start = local_midnight_ns(dt.date(2025, 7, 1))
    world = LiveWorld(site, SimClock(start_ns=start, speed=1e-9), seed=9)
    truth = world.truth(until_ns=start + 3 * DAY_NS)  # three days: the first is dropped on the way
    model = SiteModel(site, seed=9)
    expected: dict[str, dict[str, float]] = {}
    for i in range(3):
        for day in model.day(dt.date(2025, 7, 1) + dt.timedelta(days=i)):
            totals = expected.setdefault(f"{day.community}/{day.device}", {})
            for name, steps in day.true_steps.items():
                totals[name] = totals.get(name, 0.0) + float(steps.sum())
    got = {k: v["totals"] for k, v in truth["devices"].items()}  # type: ignore[attr-defined]
    assert got.keys() == expected.keys()
    for key, totals in expected.items():
        assert got[key] == pytest.approx(totals), key
    assert got["xinjing-6/master-meter"]["volume_m3"] > 0


def test_live_truth_counts_only_what_flowed_after_the_start(tmp_path: Path) -> None:
    site = make_site(tmp_path, "tcp")
    start = local_midnight_ns(dt.date(2025, 7, 1)) + 12 * 3600 * 10**9  # noon
    world = LiveWorld(site, SimClock(start_ns=start, speed=1e-9), seed=9)
    half = world.truth(until_ns=start + 12 * 3600 * 10**9)["devices"]["xinjing-6/master-meter"]["totals"]  # type: ignore[index]
    day = next(d for d in SiteModel(site, seed=9).day(dt.date(2025, 7, 1)) if d.device == "master-meter")
    afternoon = day.true_steps["volume_m3"][day.time_ns > start].sum()
    assert half["volume_m3"] == pytest.approx(afternoon)
    assert half["volume_m3"] < day.truth["volume_m3"]
