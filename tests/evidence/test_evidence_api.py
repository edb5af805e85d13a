"""The evidence through the API, on a real influxd and SQLite: an admin runs the digest job, the check
is clean; a reading edited in InfluxDB afterwards shows in the check by device and day, and the next
verification run marks the claim resting on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.digest import day_bounds_ns
from jieshui.inventory import load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from store.influx import InfluxConfig, InfluxStore
from store.lineprotocol import Point
from tests.api.conftest import Api, District, make_api

ROOT = Path(__file__).parents[2]
COMMUNITY = "xinjing-6"
NOW = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # settled: through Dec 28


@pytest.fixture
def api(influx_server: InfluxServer, tmp_path: Path) -> Iterator[Api]:
    store = InfluxStore(InfluxConfig(url=influx_server.url, database="t_evidence_api", timeout_s=60))
    store.bootstrap()
    site = load_site(ROOT / "examples" / "community.yaml")
    backfill(site, store, dt.date(2025, 12, 20), dt.date(2026, 1, 6), seed=5, step_s=600)
    yield make_api(District(site, store, {}), f"sqlite:///{tmp_path / 'api.sqlite3'}", NOW)
    store.execute('DROP DATABASE "t_evidence_api"')
    store.close()


def test_digest_check_tamper_and_the_verdict_says_so(api: Api) -> None:
    # the digest job stops at the last settled day whatever is asked
    run = api.post(f"/communities/{COMMUNITY}/digests", params={"through": "2026-01-04"})
    assert run.status_code == 200, run.text
    assert run.json()["through"] == "2025-12-28"
    assert run.json()["added"]["master-meter"] == 9  # 20..28 December
    assert api.post(f"/communities/{COMMUNITY}/digests", who="evaluator").status_code == 403
    clean = api.get(f"/communities/{COMMUNITY}/evidence/2025", who="manager")
    assert clean.status_code == 200, clean.text
    assert clean.json()["ok"] is True
    assert clean.json()["findings"] == []

    # someone lowers a master-meter reading on 22 December
    store = api.ctx.store
    start, end = day_bounds_ns(dt.date(2025, 12, 22))
    (series,) = store.query(
        f"SELECT volume_m3 FROM water_meter WHERE device = 'master-meter' AND time > {start} AND time <= {end} "
        "GROUP BY * LIMIT 1"
    )
    t = int(series.time.astype("int64")[0])
    store.write(
        [Point("water_meter", dict(series.tags), {"volume_m3": float(series.values("volume_m3")[0]) - 3}, t)]
    )

    found = api.get(f"/communities/{COMMUNITY}/evidence/2025", who="evaluator").json()
    assert found["ok"] is False
    assert [(f["device"], f["day"], f["kind"]) for f in found["findings"]] == [
        ("master-meter", "2025-12-22", "edited")
    ]

    verdicts = api.post(f"/communities/{COMMUNITY}/verifications/2025", who="evaluator")
    assert verdicts.status_code == 201, verdicts.text
    claims = {c["facility"]: c for c in verdicts.json()["result"]["claims"]}
    master = claims["master"]
    assert master["verdict"] != "verified"
    assert any(
        r["code"] == "evidence_changed" and "master-meter 2025-12-22" in r["en"] for r in master["reasons"]
    )
    assert master["basis"]["evidence"] == "changed"
    assert claims["car-wash"]["basis"] is None or claims["car-wash"]["basis"]["evidence"] == "intact"
