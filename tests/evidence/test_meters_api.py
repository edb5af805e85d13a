"""The meter registry through the API, on real servers (influxd from tests/conftest.py, SQLite through
tests/api/conftest.py's `make_api`): a manager records a meter replacement with its readings, and the
verification run through the API counts the true consumption across the swap; the same data before the
record was flagged as an unexplained reset. Who may record, what is refused, and corrections."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collector.pipeline import DeviceRef
from devices.profile import find_profile
from evidence.meters import SHANGHAI
from jieshui.inventory import load_site
from store.influx import InfluxStore
from store.lineprotocol import Point
from tests.api.conftest import NOW, OTHER, OWN, SITE, Api, District, make_api

NS = 10**9
HOUR = 3600 * NS
DEVICE = "master-meter"
PER_HOUR = 3650 * 0.150 / 24  # xinjing-6's 3650 people at 150 L/person/day, in m3/h
SWAP_AT = dt.datetime(2025, 6, 10, 10, 30, tzinfo=SHANGHAI)
SILENT = (dt.datetime(2025, 6, 10, 8, tzinfo=SHANGHAI), dt.datetime(2025, 6, 10, 14, tzinfo=SHANGHAI))
OLD_START, NEW_FIRST = 50_000.0, 0.4
NEW_SERIAL = "UL100-2506001"


@pytest.fixture
def api(influx: InfluxStore, tmp_path: Path) -> Iterator[Api]:
    """The API on examples/district.yaml, its "now" in January 2026, with a year of xinjing-6's master
    meter in its own database: readings hourly, silent on 10 June 2025 from 08:00 to 14:00, the meter
    swapped at 10:30 (the new one showing 0.4)."""
    site = load_site(SITE)
    _, community = site.community(OWN)
    device = next(d for _, d in community.devices() if d.id == DEVICE)
    ref = DeviceRef("changning", OWN, DEVICE, find_profile(device.profile), "test")
    start = int(dt.datetime(2025, 1, 1, tzinfo=SHANGHAI).timestamp()) * NS
    t = start + np.arange(1, 365 * 24 + 1, dtype=np.int64) * HOUR
    a, b = (int(x.timestamp()) * NS for x in SILENT)
    t = t[(t <= a) | (t >= b)]
    swap_ns = int(SWAP_AT.timestamp()) * NS
    flowed = (t - start) / HOUR * PER_HOUR
    at_swap = (swap_ns - start) / HOUR * PER_HOUR
    volume = np.where(t < swap_ns, OLD_START + flowed, NEW_FIRST + flowed - at_swap)
    influx.write(
        Point("water_meter", ref.tags(), {"volume_m3": float(v)}, int(ts))
        for ts, v in zip(t.tolist(), volume.tolist(), strict=True)
    )
    made = make_api(District(site, influx, {}), f"sqlite:///{tmp_path}/api.sqlite3", now=NOW)
    yield made
    made.client.close()
    made.ctx.db.close()


def _old_meter(api: Api) -> str:
    _, community = api.ctx.site.community(OWN)
    device = next(d for _, d in community.devices() if d.id == DEVICE)
    assert device.meter is not None
    return device.meter.serial


def _true_use_across_the_swap() -> tuple[float, float]:
    """The old meter's final reading at 10:30, and the six silent hours' true use."""
    start = dt.datetime(2025, 1, 1, tzinfo=SHANGHAI)
    return OLD_START + (SWAP_AT - start) / dt.timedelta(hours=1) * PER_HOUR, 6 * PER_HOUR


def _replacement(api: Api, **change: Any) -> dict[str, Any]:
    old_final, _ = _true_use_across_the_swap()
    body = {
        "quantity": "volume_m3",
        "replaced_at": SWAP_AT.isoformat(),
        "old_serial": _old_meter(api),
        "old_final_reading": old_final,
        "new_serial": NEW_SERIAL,
        "new_first_reading": NEW_FIRST,
        "note": "总表更换（计量所上门）",
        "new_meter": {"nominal_dn": 100, "accuracy_class": "2", "calibrated_on": "2025-05-20"},
    }
    return {**body, **change}


def _per_capita(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    run = api.post(
        f"/communities/{OWN}/verifications/2025", who="evaluator", headers={"Accept-Language": "en"}
    )
    assert run.status_code == 201, run.text
    result = run.json()["result"]
    audit = next(m for m in result["meters"] if m["device"] == DEVICE and m["quantity"] == "volume_m3")
    return next(c for c in result["claims"] if c["id"] == "per-capita"), audit


def test_a_recorded_replacement_gives_the_true_consumption_and_the_unrecorded_swap_a_reset(api: Api) -> None:
    old_final, silent_use = _true_use_across_the_swap()
    # before anything is recorded: the drop is an unexplained reset, its time named, the claim refused
    claim, audit = _per_capita(api)
    assert audit["resets"] == 1
    assert audit["reset_times"] == ["2025-06-10T06:00:00Z"]
    assert claim["verdict"] == "not_verified"
    reset = next(r for r in claim["reasons"] if r["code"] == "meter_reset")
    assert "master-meter volume_m3: the totalizer fell back 1 time(s) (2025-06-10 14:00;" in reset["en"]
    unrecorded_total = audit["total"]

    # the community's manager records the swap with both readings
    recorded = api.post(
        f"/communities/{OWN}/devices/{DEVICE}/replacements", who="manager", json=_replacement(api)
    )
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    manager_key_id = api.keys["manager"].split("_")[1]
    assert (body["source"], body["recorded_by"], body["superseded"]) == ("api", manager_key_id, False)
    assert body["recorded_at"].startswith("2026-01-05T02:00:00")  # the API's "now", in UTC

    # verification through the API now counts the six silent hours in full
    claim, audit = _per_capita(api)
    assert audit["resets"] == 0
    (swap,) = audit["replacements"]
    assert swap["use"] == pytest.approx(silent_use)
    assert swap["old_final_reading"] == pytest.approx(old_final)
    assert swap["recorded_by"] == manager_key_id
    # the guess had lost the old meter's last 2.5 hours and counted the new meter's 0.4 as use
    assert audit["total"] - unrecorded_total == pytest.approx(2.5 * PER_HOUR - NEW_FIRST)
    assert claim["verdict"] == "verified", claim["reasons"]
    assert "meter_reset" not in [r["code"] for r in claim["reasons"]]
    assert any(r["code"] == "meter_replaced" and NEW_SERIAL in r["en"] for r in claim["reasons"])
    # the registry followed the swap: the new meter in place, the old one removed at its time
    meters = {d["device"]: d for d in api.get(f"/communities/{OWN}/meters", who="manager").json()}
    master = meters[DEVICE]
    assert master["meter"]["serial"] == NEW_SERIAL
    assert (master["meter"]["installed_on"], master["meter"]["source"]) == ("2025-06-10", "api")
    assert [(m["serial"], m["removed_at"]) for m in master["past_meters"]] == [
        (_old_meter(api), "2025-06-10T02:30:00Z")
    ]
    assert meters["rw-controller"]["meter"]["source"] == "inventory"
    # and the write is in the audit log
    entries = [e for e in api.get("/audit").json() if e["action"] == "meter.replacement"]
    assert [(e["target"], e["actor"]) for e in entries] == [
        (f"community/{OWN}/device/{DEVICE}", manager_key_id)
    ]
    # the claim lists the meters it rests on: both that served in 2025, neither overdue
    assert [(m["serial"], m["judged_on"], m["overdue"]) for m in claim["meters"]] == [
        (_old_meter(api), "2025-06-10", False),
        (NEW_SERIAL, "2025-12-31", False),
    ]


def test_a_later_record_of_the_same_swap_corrects_the_earlier(api: Api) -> None:
    old_final, silent_use = _true_use_across_the_swap()
    wrong = api.post(
        f"/communities/{OWN}/devices/{DEVICE}/replacements",
        json=_replacement(api, old_final_reading=old_final - 100),  # below the 08:00 reading
    )
    assert wrong.status_code == 201, wrong.text
    claim, _ = _per_capita(api)
    assert "replacement_final_below_last" in [r["code"] for r in claim["reasons"]]
    assert claim["verdict"] == "not_verified"
    right = api.post(
        f"/communities/{OWN}/devices/{DEVICE}/replacements", who="manager", json=_replacement(api)
    )
    assert right.status_code == 201, right.text
    listed = api.get(f"/communities/{OWN}/devices/{DEVICE}/replacements", who="evaluator").json()
    assert [(r["id"], r["superseded"]) for r in listed] == [
        (wrong.json()["id"], True),
        (right.json()["id"], False),
    ]
    claim, audit = _per_capita(api)
    assert claim["verdict"] == "verified", claim["reasons"]
    assert [s["use"] for s in audit["replacements"]] == [pytest.approx(silent_use)]


def _error(r: Any) -> str:
    return str(r.json()["error"]["code"])


def test_who_may_record_and_what_is_refused(api: Api) -> None:
    url = f"/communities/{OWN}/devices/{DEVICE}/replacements"
    # evaluators read but do not record; another community's manager is told it does not exist
    assert _error(api.post(url, who="evaluator", json=_replacement(api))) == "forbidden_role"
    assert api.post(url, who="manager_other", json=_replacement(api)).status_code == 404
    assert _error(api.get(url, who="manager_other")) == "community_not_found"
    missing = api.post(f"/communities/{OWN}/devices/no-such-device/replacements", json=_replacement(api))
    assert _error(missing) == "device_not_found"
    refused = {
        "not_a_totalizer": _replacement(api, quantity="flow_m3h"),
        "date_in_future": _replacement(api, replaced_at="2026-02-01T00:00:00+08:00"),
        "replacement_same_meter": _replacement(api, new_serial=_old_meter(api)),
        "replacement_conflict": _replacement(api, old_serial="SOMEONE-ELSES"),
    }
    for code, body in refused.items():
        r = api.post(url, json=body, headers={"Accept-Language": "en"})
        assert (r.status_code, _error(r)) == (422, code), r.text
    conflict = api.post(url, json=refused["replacement_conflict"], headers={"Accept-Language": "en"}).json()
    assert conflict["error"]["message"] == (
        f"the meter registered on device {DEVICE} at 2025-06-10T10:30:00+08:00 is {_old_meter(api)}, not the old "
        "meter SOMEONE-ELSES"
    )
    for field, value in [
        ("old_final_reading", -1.0),
        ("new_first_reading", 1e13),
        ("replaced_at", "2025-06-10T10:30:00"),  # no UTC offset
        ("replaced_at", "1999-12-31T10:30:00+08:00"),
        ("old_serial", "A\x00B"),
        ("note", "\x00"),
    ]:
        r = api.post(url, json=_replacement(api, **{field: value}))
        assert (r.status_code, _error(r)) == (422, "invalid_request"), (field, value, r.text)
    # JSON as Python writes it lets NaN through: refused like any reading that is no number
    body = json.dumps(_replacement(api, old_final_reading=float("nan")))
    assert "NaN" in body
    nan = api.post(url, content=body.encode(), headers={"Content-Type": "application/json"})
    assert (nan.status_code, _error(nan)) == (422, "invalid_request"), nan.text
    assert api.get(url).json() == []  # nothing refused was stored


def test_the_meter_in_place_is_recorded_and_corrected(api: Api) -> None:
    url = f"/communities/{OWN}/devices/rw-makeup-meter/meter"
    body = {"serial": "UL25-2510001", "nominal_dn": 25, "accuracy_class": 1, "installed_on": "2025-10-01"}
    first = api.client.put(url, json=body, headers=api.headers("manager"))
    assert first.status_code == 200, first.text
    placed = first.json()
    assert (placed["meter"]["serial"], placed["meter"]["accuracy_class"]) == ("UL25-2510001", "1")
    assert (placed["meter"]["rule"], placed["meter"]["due"]) == ("service_life", "2031-10-01")
    # the inventory's meter counts as removed when the new one was installed
    assert [(m["serial"], m["removed_at"], m["source"]) for m in placed["past_meters"]] == [
        ("UL25-2201002", "2025-09-30T16:00:00Z", "inventory")
    ]
    corrected = api.client.put(
        url, json={**body, "calibrated_on": "2025-09-15"}, headers=api.headers("admin")
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["meter"]["calibrated_on"] == "2025-09-15"
    assert api.client.put(url, json=body, headers=api.headers("evaluator")).status_code == 403
    future = api.client.put(url, json={**body, "installed_on": "2026-02-01"}, headers=api.headers("admin"))
    assert _error(future) == "date_in_future"
    removed = api.client.put(url, json={**body, "serial": "UL25-2201002"}, headers=api.headers("admin"))
    assert _error(removed) == "meter_removed"
    assert _error(api.client.put(url, json={**body, "nominal_dn": 30}, headers=api.headers("admin"))) == (
        "invalid_request"
    )
    actions = [e["action"] for e in api.get("/audit").json()]
    assert actions.count("meter.set") == 2
    # other managers do not see it
    assert api.get(f"/communities/{OWN}/meters", who="manager_other").status_code == 404
    assert api.get(f"/communities/{OTHER}/meters", who="manager_other").status_code == 200
