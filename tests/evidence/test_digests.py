"""Daily digests against a real influxd and a real SQL database: after a backfilled week is digested, a
reading edited in InfluxDB, a point deleted and a point inserted are each found and named by device and
day (`jieshui evidence check` too), and a digest row altered in SQL breaks the chain."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from api.db import Database, EvidenceDigest
from evidence import digest
from evidence.jobs import check, recompute, record_digests
from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer
from simulators.backfill import backfill
from store.influx import InfluxConfig, InfluxStore, Series
from store.lineprotocol import Point
from verification.engine import verify

ROOT = Path(__file__).parents[2]
COMMUNITY = "xinjing-6"
FIRST, END = dt.date(2025, 3, 1), dt.date(2025, 3, 8)  # a week, END excluded
LAST = END - dt.timedelta(days=1)
NOW = dt.datetime(2025, 3, 20, tzinfo=dt.UTC)


@pytest.fixture
def site() -> Site:
    return load_site(ROOT / "examples" / "community.yaml")


@pytest.fixture
def week(influx_server: InfluxServer, site: Site, tmp_path: Path) -> Iterator[tuple[InfluxStore, Database]]:
    """A backfilled week (10-minute steps) in a fresh database, digested through its last day."""
    store = InfluxStore(InfluxConfig(url=influx_server.url, database="t_evidence_week", timeout_s=60))
    store.bootstrap()
    backfill(site, store, FIRST, END, seed=3, step_s=600)
    db = Database(f"sqlite:///{tmp_path / 'jieshui.sqlite3'}")
    added = record_digests(db, store, site, COMMUNITY, LAST, NOW)
    assert added["master-meter"] == 7
    yield store, db
    db.close()
    store.execute('DROP DATABASE "t_evidence_week"')
    store.close()


def _point_on(store: InfluxStore, measurement: str, device: str, day: dt.date) -> tuple[int, dict[str, str]]:
    start, end = digest.day_bounds_ns(day)
    (series,) = store.query(
        f"SELECT * FROM \"{measurement}\" WHERE device = '{device}' AND time > {start} AND time <= {end} "
        "GROUP BY * LIMIT 1"
    )
    return int(series.time.astype("int64")[0]), dict(series.tags)


def test_an_untouched_week_matches_and_the_job_is_incremental(
    week: tuple[InfluxStore, Database], site: Site
) -> None:
    store, db = week
    report = check(db, store, site, COMMUNITY, 2025)
    assert report.ok, report.findings
    assert {d.device: d.days_checked for d in report.devices}["master-meter"] == 7
    # a second run adds nothing; a later `through` adds the days since, chained to the last
    assert set(record_digests(db, store, site, COMMUNITY, LAST, NOW).values()) == {0}
    assert record_digests(db, store, site, COMMUNITY, LAST + dt.timedelta(days=2), NOW)["master-meter"] == 2
    assert check(db, store, site, COMMUNITY, 2025).ok


def test_edited_deleted_and_inserted_points_are_named_by_device_and_day(
    week: tuple[InfluxStore, Database], site: Site, tmp_path: Path
) -> None:
    store, db = week
    edited, deleted, inserted = dt.date(2025, 3, 2), dt.date(2025, 3, 4), dt.date(2025, 3, 6)
    # someone raises one reading of the master meter: same time, same tags, another value
    t, tags = _point_on(store, "water_meter", "master-meter", edited)
    (row,) = store.query(f"SELECT volume_m3 FROM water_meter WHERE device = 'master-meter' AND time = {t}")
    store.write([Point("water_meter", tags, {"volume_m3": float(row.values("volume_m3")[0]) + 5.0}, t)])
    # deletes one point of the river pump
    t, _ = _point_on(store, "river_pump", "river-pump-1", deleted)
    store.execute(f"DELETE FROM river_pump WHERE device = 'river-pump-1' AND time = {t}")
    # and inserts one into the rainwater controller's day
    t, tags = _point_on(store, "rainwater_system", "rw-controller", inserted)
    store.write([Point("rainwater_system", tags, {"level_pct": 99.0}, t + 1)])

    report = check(db, store, site, COMMUNITY, 2025)
    found = {(f.device, f.day, f.kind) for f in report.findings}
    assert found == {
        ("master-meter", edited, "edited"),
        ("river-pump-1", deleted, "deleted"),
        ("rw-controller", inserted, "inserted"),
    }
    by_device = {f.device: f for f in report.findings}
    assert by_device["river-pump-1"].points_now == by_device["river-pump-1"].stored_points - 1
    assert (
        by_device["rw-controller"].message
        == f"1 points were added to its {by_device['rw-controller'].stored_points}"
    )
    changed = {device: days for device, days in report.changed_days().items() if days}
    assert changed == {"master-meter": {edited}, "river-pump-1": {deleted}, "rw-controller": {inserted}}
    assert report.changed_days()["car-wash-1"] == set()  # checked, intact

    # and the verdicts resting on those days say so
    result = verify(store, site, COMMUNITY, 2025, report.changed_days())
    by_facility = {c.facility: c for c in result.claims}
    river = by_facility["river-pump"]
    assert river.verdict != "verified"
    assert [r.en for r in river.reasons if r.code == "evidence_changed"] == [
        f"the data of 1 day(s) changed after they were digested (river-pump-1 {deleted}): the claim cannot "
        "rest on them until that is explained"
    ]
    assert river.basis is not None
    assert (river.basis.evidence, river.basis.changed_days) == ("changed", [f"river-pump-1 {deleted}"])
    wash = by_facility["car-wash"]
    assert wash.basis is not None
    assert wash.basis.evidence == "intact"
    assert not [r for r in wash.reasons if r.code == "evidence_changed"]

    # the command says the same, and fails
    site_file, db_url = ROOT / "examples" / "community.yaml", db.url
    done = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "evidence", "check", "--site", str(site_file), "--community",
         COMMUNITY, "--year", "2025", "--influx-url", store.config.url, "--influx-database",
         store.config.database, "--db-url", db_url],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"xinjing-6 master-meter {edited}: edited: its" in done.stdout
    assert f"xinjing-6 river-pump-1 {deleted}: deleted: 1 of its" in done.stdout
    assert f"xinjing-6 rw-controller {inserted}: inserted: 1 points were added" in done.stdout
    assert "3 day(s) no longer match" in done.stdout


def test_an_altered_digest_row_breaks_the_chain(week: tuple[InfluxStore, Database], site: Site) -> None:
    store, db = week
    day = dt.date(2025, 3, 3)
    # someone rewrites a day's digest to match edited data: the next rows no longer chain to it
    with db.session() as s:
        s.execute(update(EvidenceDigest).where(EvidenceDigest.device == "master-meter", EvidenceDigest.day == day)
                  .values(digest="0" * 64))  # fmt: skip
    report = check(db, store, site, COMMUNITY, 2025)
    kinds = {(f.device, f.day, f.kind) for f in report.findings}
    assert ("master-meter", day, "chain_broken") in kinds
    assert ("master-meter", day, "edited") in kinds  # and the data no longer matches the row either


def test_the_job_digests_from_a_devices_first_reading_and_empty_days_count(
    week: tuple[InfluxStore, Database], site: Site
) -> None:
    store, db = week
    with db.session() as s:
        rows = (
            s.query(EvidenceDigest)
            .filter(EvidenceDigest.device == "master-meter")
            .order_by(EvidenceDigest.day)
            .all()
        )
        assert rows[0].day == FIRST
    later = END + dt.timedelta(days=1)  # (END itself holds the backfill's closing reading at 00:00)
    extra = recompute(store, "water_meter", COMMUNITY, "master-meter", later, later)
    assert extra == [digest.DayDigest(later, 0, digest.EMPTY)]  # nothing after the week: an empty day


# --- pure ------------------------------------------------------------------------------------------


def _series(times: list[int], **columns: list[object]) -> Series:
    cols = {
        k: np.array(v, dtype=np.float64 if all(isinstance(x, float) for x in v) else object)
        for k, v in columns.items()
    }
    # `meter` is a tag key another series has: InfluxDB reports it empty here (GROUP BY *)
    tags = {"device": "d", "community": "c", "meter": ""}
    return Series("m", tags, np.array(times, dtype=np.int64).astype("datetime64[ns]"), cols)


def test_canonical_lines_are_stable_and_days_are_shanghai_days() -> None:
    day = dt.date(2025, 3, 2)
    start, end = digest.day_bounds_ns(day)
    assert start == int(dt.datetime(2025, 3, 1, 16, tzinfo=dt.UTC).timestamp()) * 10**9  # 00:00 UTC+8
    lines = digest.canonical_lines(
        [_series([start, start + 1, end, end + 1], v=[0.5, 1.0, 2.5, float("nan")], s=["z", "a", "b", "c"])]
    )
    number = digest.day_number(day)
    # a day holds (00:00, 24:00]: the reading at midnight closes the day before, as in verification
    assert lines[number - 1] == [f'{start}|community=c,device=d|s="z",v=0.5']
    assert lines[number] == [
        f'{start + 1}|community=c,device=d|s="a",v=1.0',
        f'{end}|community=c,device=d|s="b",v=2.5',
    ]
    assert lines[number + 1] == [f'{end + 1}|community=c,device=d|s="c"']  # NaN: the field is absent
    days = digest.digest_days(lines, day, day + dt.timedelta(days=2))
    assert [d.points for d in days] == [2, 1, 0]
    assert days[2].digest == digest.EMPTY
    # the order InfluxDB returns series in does not matter
    again = digest.digest_days(
        digest.canonical_lines([_series([end, start + 1], v=[2.5, 1.0], s=["b", "a"])]), day, day
    )
    assert again[0] == days[0]


def test_compare_names_what_happened_and_checks_the_chain() -> None:
    days = [dt.date(2025, 1, d) for d in (1, 2, 3)]
    good = [digest.DayDigest(d, 10, f"{i:064x}") for i, d in enumerate(days)]
    previous, stored = digest.genesis("c", "d"), []
    for d in good:
        previous = digest.link(previous, d.digest)
        stored.append(digest.StoredDay(d.day, d.points, d.digest, previous))
    assert digest.compare("c", "d", stored, good) == []
    now = [good[0], digest.DayDigest(days[1], 9, "f" * 64), digest.DayDigest(days[2], 10, "e" * 64)]
    assert [(f.day, f.kind) for f in digest.compare("c", "d", stored, now)] == [
        (days[1], "deleted"),
        (days[2], "edited"),
    ]
    assert [f.kind for f in digest.compare("c", "d", [stored[0], stored[2]], good)] == ["gap", "chain_broken"]
    assert [f.kind for f in digest.compare("other", "d", stored, good)] == ["chain_broken"]
