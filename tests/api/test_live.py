"""Registry, live status, alerts and series through the API, against the backfilled fortnight in a real
influxd and a real SQL database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pytest

from api.live import NS, local_date, local_midnight_ns
from store.lineprotocol import Point
from tests.api.conftest import NOW, OTHER, OWN, Api, District
from verification.checks import consumption


def _raw(district: District, kind: str, community: str, device: str, field: str, a: int, b: int):
    found = district.store.query(
        f'SELECT "{field}" FROM "{kind}" WHERE community = $c AND device = $d AND time > $a AND time <= $b',
        params={"c": community, "d": device, "a": a, "b": b},
    )
    return found[0].time.astype(np.int64), found[0].values(field)


def test_registry_serves_the_application_form_and_scopes_managers(api: Api) -> None:
    everything = api.get("/communities").json()
    assert len(everything) == 8
    mine = api.get("/communities", who="manager").json()
    assert [c["id"] for c in mine] == [OWN]
    assert mine[0]["name"] == "新泾六村"
    assert mine[0]["postcode"] == "200335"
    detail = api.get(f"/communities/{OWN}", who="manager").json()
    assert {f["id"] for f in detail["facilities"]} == {"rainwater", "river-pump", "car-wash", "master"}
    assert {d["id"]: d["interval_s"] for d in detail["devices"]}[
        "car-wash-1"
    ] == 900  # the profile's report interval
    assert next(c["measure"] for c in detail["claims"]) == "rainwater_reuse_per_day"
    districts = api.get("/districts", who="manager").json()
    assert districts == [
        {"id": "changning", "name": "长宁区", "name_en": "Changning District", "communities": [OWN]}
    ]


def test_another_community_is_not_found_for_a_manager_exactly_like_a_missing_one(api: Api) -> None:
    other = api.get(f"/communities/{OTHER}", who="manager", headers={"Accept-Language": "en"})
    missing = api.get("/communities/no-such-place", who="manager", headers={"Accept-Language": "en"})
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["code"] == missing.json()["error"]["code"] == "community_not_found"
    assert other.json()["error"]["message"] == f"community {OTHER} not found"


def test_status_reports_latest_readings_tanks_and_reuse_totals(api: Api, district: District) -> None:
    status = api.get(f"/communities/{OWN}/status", who="manager").json()
    now_ns = int(NOW.timestamp() * NS)
    assert dt.datetime.fromisoformat(status["at"]) == NOW
    devices = {d["device"]: d for d in status["devices"]}
    rw = devices["rw-controller"]
    # backfilled every 5 minutes: the latest reading is at most one step old, and not silent
    assert 0 <= rw["age_s"] < 300
    assert not rw["silent"]
    t, level = _raw(
        district, "rainwater_system", OWN, "rw-controller", "level_pct", now_ns - 3600 * NS, now_ns
    )
    assert rw["readings"]["level_pct"] == pytest.approx(level[-1])
    assert dt.datetime.fromisoformat(rw["last_seen"]).timestamp() * NS == pytest.approx(t[-1], abs=1000)

    tank = status["tanks"][0]
    assert tank["capacity_m3"] == 70
    assert tank["stored_m3"] == pytest.approx(level[-1] / 100 * 70, abs=1e-3)
    # days of supply at the last 7 days' demand, against the raw readings' consumption
    t7, s7 = _raw(
        district, "rainwater_system", OWN, "rw-controller", "supply_m3", now_ns - 7 * 86400 * NS - 1, now_ns
    )
    demand = float(consumption(t7, s7).delta.sum())
    assert tank["demand_7d_m3"] == pytest.approx(demand, rel=1e-6, abs=1e-6)
    assert tank["days_of_supply"] == pytest.approx(level[-1] / 100 * 70 / (demand / 7), rel=1e-3)

    # reuse this year (local Jan 1 to now) from the pushed-down daily FIRST/LAST equals the sum of every
    # 5-minute increment from the last reading of 2025 on
    jan1 = local_midnight_ns(dt.date(2026, 1, 1))
    ty, sy = _raw(district, "rainwater_system", OWN, "rw-controller", "supply_m3", jan1 - 86400 * NS, now_ns)
    inc = consumption(ty, sy)
    in_year = inc.time_ns > jan1
    today = inc.time_ns > local_midnight_ns(local_date(now_ns))
    reuse = {r["device"]: r for r in status["reuse"]}
    assert reuse["rw-controller"]["year_m3"] == pytest.approx(float(inc.delta[in_year].sum()), abs=1e-4)
    assert reuse["rw-controller"]["today_m3"] == pytest.approx(float(inc.delta[today].sum()), abs=1e-4)
    assert reuse["rw-controller"]["month_m3"] == reuse["rw-controller"]["year_m3"]  # January
    assert reuse["river-pump-1"]["quantity"] == "volume_m3"
    assert status["reuse_year_m3"] == pytest.approx(
        reuse["rw-controller"]["year_m3"] + reuse["river-pump-1"]["year_m3"], abs=1e-5
    )


def _write(district: District, point: Point) -> None:
    district.store.write([point])


def test_alerts_open_acknowledge_and_clear(district: District, db_url: str) -> None:
    from tests.api.conftest import make_api

    later = NOW + dt.timedelta(minutes=1)
    api = make_api(district, db_url, now=later)
    tags = {"district": "changning", "community": OWN, "kind": "river_pump", "device": "river-pump-1",
            "collector": "test", "profile": "hs-rp55@1"}  # fmt: skip
    t_ns = int(later.timestamp() * NS) - NS
    try:
        _write(district, Point("river_pump", tags, {"fault_code": 7, "volume_m3": 1.0e9}, t_ns))
        _write(
            district,
            Point("meter_event", {**tags, "quantity": "volume_m3", "event": "reset"},
                  {"previous": 812.5, "current": 0.3}, t_ns),
        )  # fmt: skip
        _write(
            district,
            Point("dead_letter", {"collector": "test", "reason": "range", "district": "changning",
                                  "community": OWN, "device": "river-pump-1"},
                  {"message": "river-pump-1: flow_m3h=9999 above max 100", "raw": "{}"}, t_ns),
        )  # fmt: skip
        alerts = api.get(
            f"/communities/{OWN}/alerts", who="manager", headers={"Accept-Language": "en"}
        ).json()
        kinds = {a["kind"]: a for a in alerts}
        assert {"pump_fault", "meter_reset", "dead_letter"} <= set(kinds)
        assert kinds["pump_fault"]["severity"] == "critical"
        assert kinds["pump_fault"]["message"]["en"] == "river-pump-1: fault, code 7"
        assert kinds["pump_fault"]["message"]["zh"] == "river-pump-1：设备故障，故障代码 7"
        assert kinds["dead_letter"]["params"]["count"] == 1
        # the other community's manager cannot see or acknowledge them
        assert api.get("/alerts", who="manager_other").json() == [
            a for a in api.get("/alerts", who="manager_other").json() if a["community"] == OTHER
        ]
        alert_id = kinds["pump_fault"]["id"]
        denied = api.post(f"/alerts/{alert_id}/acknowledge", who="manager_other", json={"note": "x"})
        assert denied.status_code == 404
        assert denied.json()["error"]["code"] == "alert_not_found"
        assert api.post(f"/alerts/{alert_id}/acknowledge", who="evaluator", json={}).status_code == 403
        ack = api.post(f"/alerts/{alert_id}/acknowledge", who="manager", json={"note": "维修已派单"})
        assert ack.status_code == 200, ack.text
        assert ack.json()["acknowledged_by"] == api.keys["manager"].split("_")[1]
        # seen again: the same alert, still acknowledged
        again = {a["kind"]: a for a in api.get(f"/communities/{OWN}/alerts", who="manager").json()}
        assert again["pump_fault"]["id"] == alert_id
        assert again["pump_fault"]["acknowledge_note"] == "维修已派单"
        # the fault clears: the alert closes; history keeps it
        _write(district, Point("river_pump", tags, {"fault_code": 0}, t_ns + NS // 2))
        open_now = {a["kind"] for a in api.get(f"/communities/{OWN}/alerts", who="manager").json()}
        assert "pump_fault" not in open_now
        history = api.get(f"/communities/{OWN}/alerts?state=all", who="manager").json()
        closed = next(a for a in history if a["id"] == alert_id)
        assert not closed["active"]
        assert closed["cleared_at"] is not None
        audit = api.get("/audit").json()
        assert audit[0]["action"] == "alert.acknowledge"
        assert audit[0]["detail"]["note"] == "维修已派单"
    finally:
        for m in ("meter_event", "dead_letter"):
            district.store.execute(f"DELETE FROM {m} WHERE community = '{OWN}'")
        district.store.execute("DELETE FROM river_pump WHERE collector = 'test'")
        api.client.close()
        api.ctx.db.close()


def test_a_silent_device_raises_an_alert(district: District, db_url: str) -> None:
    from tests.api.conftest import make_api

    # an hour after the backfill ends nothing reports: every polled device is silent (5 x 60 s)
    api = make_api(district, db_url, now=dt.datetime(2026, 1, 6, 1, 0, tzinfo=NOW.tzinfo))
    try:
        alerts = api.get(f"/communities/{OWN}/alerts", who="manager").json()
        silent = {a["device"] for a in alerts if a["kind"] == "device_silent"}
        assert {"rw-controller", "river-pump-1", "master-meter", "rw-makeup-meter"} <= silent
    finally:
        api.client.close()
        api.ctx.db.close()


def test_series_aggregates_in_influx_as_json_and_csv(api: Api, district: District) -> None:
    start, end = "2026-01-04T00:00:00", "2026-01-05T00:00:00"  # a local day
    r = api.get(f"/communities/{OWN}/devices/rw-controller/series",
                params={"quantity": "supply_m3", "agg": "sum", "window": "1h", "start": start, "end": end})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    points = body["series"][0]["points"]
    assert len(points) == 24
    assert body["unit"] == "m3"
    a = local_midnight_ns(dt.date(2026, 1, 4))
    t, s = _raw(
        district, "rainwater_system", OWN, "rw-controller", "supply_m3", a - 3600 * NS, a + 86400 * NS
    )
    day_total = float(consumption(t, s).delta[consumption(t, s).time_ns > a].sum())
    assert sum(p["value"] or 0 for p in points) == pytest.approx(day_total, abs=1e-4)

    mean = api.get(f"/communities/{OWN}/series",
                   params={"quantity": "level_pct", "agg": "mean", "window": "1d", "start": start, "end": end}).json()  # fmt: skip
    t, lv = _raw(district, "rainwater_system", OWN, "rw-controller", "level_pct", a - 1, a + 86400 * NS - 1)
    assert mean["series"][0]["points"][0]["value"] == pytest.approx(float(lv.mean()), rel=1e-9)

    text = api.get(f"/communities/{OWN}/series",
                   params={"quantity": "volume_m3", "agg": "last", "window": "6h", "start": start, "end": end,
                           "format": "csv"})  # fmt: skip
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    # every device with a volume_m3 quantity: river pump, make-up meter, master meter; 4 windows each
    assert sorted({r["device"] for r in rows}) == ["master-meter", "river-pump-1", "rw-makeup-meter"]
    assert len(rows) == 12
    assert rows[0]["time"].endswith("Z")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"quantity": "no_such"}, "unknown_quantity"),
        ({"quantity": "vehicle_class", "agg": "last"}, "not_numeric"),
        ({"quantity": "level_pct", "window": "0h"}, "invalid_request"),
        (
            {"quantity": "level_pct", "start": "2026-01-05T00:00:00", "end": "2026-01-04T00:00:00"},
            "bad_time_range",
        ),
        ({"quantity": "level_pct", "start": "1900-01-01T00:00:00"}, "bad_time_range"),
        ({"quantity": "level_pct", "window": "1s", "start": "2025-01-01T00:00:00"}, "too_many_points"),
    ],
)
def test_bad_series_requests_get_a_precise_error(sqlite_api: Api, params: dict[str, str], code: str) -> None:
    r = sqlite_api.get(f"/communities/{OWN}/series", params=params, headers={"Accept-Language": "en"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["lang"] == "en"


def test_settled_days_come_from_the_cache_and_give_the_same_growth(district: District) -> None:
    from api.readings import SettledBuckets
    from devices.profile import find_profile

    profile = find_profile("hy-rwc200")
    start = local_midnight_ns(dt.date(2025, 12, 20))
    end = int(NOW.timestamp() * NS)
    args = (district.store, profile, OWN, "rw-controller", "supply_m3")
    cache = SettledBuckets()
    # first call caches days up to 8 days before its end; the second extends the cache by two days
    early = cache.increments(*args, start, end - 2 * 86400 * NS, "1d")
    late = cache.increments(*args, start, end, "1d")
    fresh = SettledBuckets().increments(*args, start, end, "1d")
    ((upto, *_),) = cache._cache.values()
    assert upto == local_midnight_ns(dt.date(2025, 12, 28))  # Jan 5 10:00 - 8 days, down to local midnight
    assert late[0].tolist() == fresh[0].tolist()
    assert late[1] == pytest.approx(fresh[1], abs=1e-9)
    assert early[1][:-3] == pytest.approx(fresh[1][: len(early[1]) - 3], abs=1e-9)
    # and the whole equals every raw 5-minute increment since the first reading
    t, s = _raw(district, "rainwater_system", OWN, "rw-controller", "supply_m3", start - 1, end)
    assert float(late[1].sum()) == pytest.approx(float(consumption(t, s).delta.sum()), abs=1e-6)
