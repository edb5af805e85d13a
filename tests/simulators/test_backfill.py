"""A year of history for examples/community.yaml at 1-minute resolution, through a real influxd:
everything written arrives, and the year's rainfall, reuse, river water, car washing and household
use fall in the calibrated ranges."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jieshui.inventory import load_site
from jieshui.services import InfluxServer
from simulators import physics
from simulators.backfill import BackfillStats, backfill
from store.influx import InfluxConfig, InfluxStore

ROOT = Path(__file__).parents[2]
YEAR = (dt.date(2025, 1, 1), dt.date(2026, 1, 1))


@pytest.fixture(scope="module")
def year(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[InfluxStore, BackfillStats, dict[str, Any]]]:
    store = InfluxStore(InfluxConfig(url=influx_server.url, database="t_backfill_year", timeout_s=120))
    store.bootstrap()
    truth_path = tmp_path_factory.mktemp("truth") / "truth.json"
    stats = backfill(
        load_site(ROOT / "examples" / "community.yaml"), store, *YEAR, seed=1, truth_path=truth_path
    )
    yield store, stats, json.loads(truth_path.read_text(encoding="utf-8"))
    store.execute('DROP DATABASE "t_backfill_year"')
    store.close()


def _count(store: InfluxStore, measurement: str, field: str, device: str) -> int:
    (series,) = store.query(
        f'SELECT count("{field}") FROM "{measurement}" WHERE device = $d', params={"d": device}
    )
    return int(series.values("count")[0])


def test_every_reading_of_the_year_is_in_influxdb(
    year: tuple[InfluxStore, BackfillStats, dict[str, Any]],
) -> None:
    store, stats, truth = year
    assert stats.days == 365
    washes = int(truth["devices"]["xinjing-6/car-wash-1"]["totals"]["wash_count"])
    grid_devices = ["rw-controller", "rw-makeup-meter", "river-pump-1", "master-meter"]
    assert stats.points == 365 * 1440 * len(grid_devices) + washes
    assert _count(store, "rainwater_system", "level_pct", "rw-controller") == 365 * 1440
    assert _count(store, "water_meter", "volume_m3", "master-meter") == 365 * 1440
    assert _count(store, "river_pump", "volume_m3", "river-pump-1") == 365 * 1440
    assert _count(store, "car_wash", "wash_l", "car-wash-1") == washes
    (tags,) = store.query('SHOW TAG VALUES FROM "water_meter" WITH KEY = "profile"')
    assert list(tags.columns["value"]) == ["ul-wm100@1"]


def test_the_year_is_in_the_calibrated_ranges(
    year: tuple[InfluxStore, BackfillStats, dict[str, Any]],
) -> None:
    _, _, truth = year
    devices = truth["devices"]
    rain = devices["xinjing-6/rw-controller"]["totals"]
    assert physics.ANNUAL_SINGLE_YEAR_RANGE_MM[0] <= rain["rain_mm"] <= physics.ANNUAL_SINGLE_YEAR_RANGE_MM[1]
    runoff = rain["inflow_m3"] + rain["first_flush_m3"]
    share = rain["supply_m3"] / runoff
    assert physics.REUSE_SHARE_OF_RUNOFF[0] <= share <= physics.REUSE_SHARE_OF_RUNOFF[1]
    assert rain["treated_m3"] == pytest.approx(rain["supply_m3"])
    wash = devices["xinjing-6/car-wash-1"]["totals"]
    litres_per_car = wash["fresh_m3"] * 1000 / wash["wash_count"]
    assert physics.MICRO_WASH_L_PER_CAR[0] <= litres_per_car <= physics.MICRO_WASH_L_PER_CAR[1]
    river = devices["xinjing-6/river-pump-1"]["totals"]["volume_m3"]
    assert physics.RIVER_WATER_M3_PER_YEAR[0] <= river <= physics.RIVER_WATER_M3_PER_YEAR[1]
    master = devices["xinjing-6/master-meter"]["totals"]["volume_m3"]
    potable_sub = devices["xinjing-6/rw-makeup-meter"]["totals"]["volume_m3"] + wash["fresh_m3"]
    lpcd = (master - potable_sub) * 1000 / 3650 / 365
    assert physics.HOUSEHOLD_LPCD[0] <= lpcd <= physics.HOUSEHOLD_LPCD[1]


def test_stored_totalizers_agree_with_the_truth_to_meter_accuracy(
    year: tuple[InfluxStore, BackfillStats, dict[str, Any]],
) -> None:
    store, _, truth = year
    totals = truth["devices"]["xinjing-6/rw-controller"]["totals"]
    for field, accuracy in (("rain_mm", 0.03), ("supply_m3", 0.02), ("inflow_m3", 0.02)):
        (first,) = store.query(
            f'SELECT first("{field}") FROM rainwater_system WHERE device = $d', params={"d": "rw-controller"}
        )
        (last,) = store.query(
            f'SELECT last("{field}") FROM rainwater_system WHERE device = $d', params={"d": "rw-controller"}
        )
        metered = last.values("last")[0] - first.values("first")[0]
        # the first reading already holds the first minute; the rest is meter accuracy and resolution
        assert metered == pytest.approx(totals[field], rel=accuracy, abs=1.0), field


def test_truth_file_has_a_value_per_local_day(
    year: tuple[InfluxStore, BackfillStats, dict[str, Any]],
) -> None:
    _, _, truth = year
    assert truth["schema"] == "jieshui.truth/1"
    device = truth["devices"]["xinjing-6/rw-controller"]
    assert device["dates"][0] == "2025-01-01"
    assert device["dates"][-1] == "2025-12-31"
    assert len(device["daily"]["rain_mm"]) == 365
    assert sum(device["daily"]["rain_mm"]) == pytest.approx(device["totals"]["rain_mm"])


def test_backfill_command_writes_and_reports(influx_server: InfluxServer, tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "simulate", "backfill", "--site", "examples/community.yaml",
         "--start", "2025-06-01", "--end", "2025-06-03", "--step", "15m", "--truth", str(truth),
         "--influx-url", influx_server.url, "--influx-database", "t_backfill_cli"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("backfilled 2 days of 5 devices: ")
    assert f"truth in {truth}" in result.stdout
    assert json.loads(truth.read_text())["devices"]["xinjing-6/master-meter"]["dates"] == [
        "2025-06-01",
        "2025-06-02",
    ]
    with InfluxStore(InfluxConfig(url=influx_server.url, database="t_backfill_cli")) as store:
        (series,) = store.query("SELECT count(volume_m3) FROM water_meter WHERE device = 'master-meter'")
        assert series.values("count").tolist() == [2 * 96]
        store.execute('DROP DATABASE "t_backfill_cli"')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2025-06-03", "--end", "2025-06-01"], "--end must be after --start"),
        (["--start", "2025-13-01", "--end", "2026-01-01"], "'2025-13-01' is not a date like 2025-01-01"),
        (["--start", "2025-01-01", "--end", "2025-01-02", "--step", "7m"], "step '7m' must divide a day"),
    ],
)
def test_backfill_command_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "simulate", "backfill", "--site", "examples/community.yaml", *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
