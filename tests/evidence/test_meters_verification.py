"""Verification with the meter registry, on hand-made series (no server): a recorded swap yields the true
consumption and is listed as evidence; the same swap without a record is an unexplained reset (an
integrity finding naming the device and time); a record the readings contradict is named; meters past
their service life or verification interval (JJG 162) are flagged at the boundary days."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from devices.profile import DeviceKind
from evidence.meters import SHANGHAI
from jieshui.inventory import Replacement, Site, load_site
from tests.verification.conftest import ROOT
from verification.engine import Series, evaluate
from verification.result import ClaimResult, VerificationResult

NS = 10**9
HOUR = 3600 * NS
Y2025 = int(dt.datetime(2025, 1, 1, tzinfo=SHANGHAI).timestamp()) * NS
POPULATION = 3650  # examples/community.yaml
PER_HOUR = POPULATION * 0.150 / 24  # m3/h: 150 L/person/day, the per-capita claim
SWAP_AT = dt.datetime(2025, 6, 10, 10, 30, tzinfo=SHANGHAI)
SILENT = (dt.datetime(2025, 6, 10, 8, tzinfo=SHANGHAI), dt.datetime(2025, 6, 10, 14, tzinfo=SHANGHAI))
OLD_START = 50_000.0
NEW_FIRST = 0.0


def _site(**meter_data: Any) -> Site:
    """examples/community.yaml with the master meter's registry data replaced by `meter_data`."""
    site = load_site(ROOT / "examples" / "community.yaml")
    raw = site.model_dump()
    for facility in raw["districts"][0]["communities"][0]["facilities"]:
        for device in facility["devices"]:
            if device["id"] == "master-meter":
                device.update(meter_data)
    return Site.model_validate(raw)


def _master_year(swapped: bool = True) -> tuple[Series, float, float, float]:
    """A year of hourly master-meter readings at a steady 150 L/person/day, silent on 10 June from
    08:00 to 14:00 local, its meter swapped at 10:30 (the new one starting at 0) unless not `swapped`.
    Returns the series, the last old reading (08:00), the old meter's final reading (10:30) and the
    year's true use."""
    hours = np.arange(1, 365 * 24 + 1, dtype=np.int64)
    t = Y2025 + hours * HOUR
    a, b = (int(x.timestamp()) * NS for x in SILENT)
    keep = (t <= a) | (t >= b)
    t = t[keep]
    flowed = (t - Y2025) / HOUR * PER_HOUR
    swap_ns = int(SWAP_AT.timestamp()) * NS
    at_swap = (swap_ns - Y2025) / HOUR * PER_HOUR
    volume = np.where((t < swap_ns) | (not swapped), OLD_START + flowed, NEW_FIRST + flowed - at_swap)
    last_old = float(OLD_START + (a - Y2025) / HOUR * PER_HOUR)
    series = Series("master-meter", DeviceKind.WATER_METER, "ul-wm100@1", 3600.0, t, {"volume_m3": volume})
    return series, last_old, OLD_START + at_swap, float(flowed[-1] - flowed[0])


def _replacement(old_final: float, at: dt.datetime = SWAP_AT) -> dict[str, Any]:
    return Replacement(quantity="volume_m3", replaced_at=at, old_serial="UL100-1904118", old_final_reading=old_final,
                       new_serial="UL100-2506001", new_first_reading=NEW_FIRST, recorded_by="王丽").model_dump()  # fmt: skip


def _run(site: Site, swapped: bool = True) -> tuple[VerificationResult, ClaimResult]:
    series, *_ = _master_year(swapped)
    result = evaluate(site, "xinjing-6", 2025, {"master-meter": series})
    return result, next(c for c in result.claims if c.id == "per-capita")


def _audit(result: VerificationResult) -> Any:
    return next(m for m in result.meters if m.device == "master-meter" and m.quantity == "volume_m3")


def test_a_recorded_replacement_yields_the_true_consumption_across_the_swap() -> None:
    _, last_old, old_final, truth = _master_year()
    result, claim = _run(_site(replacements=[_replacement(old_final)]))
    audit = _audit(result)
    assert audit.total == pytest.approx(truth)
    assert audit.resets == 0
    (swap,) = audit.replacements
    assert swap.last_reading == pytest.approx(last_old)
    assert swap.last_reading_at == "2025-06-10T00:00:00Z"  # 08:00 local
    assert swap.first_reading_at == "2025-06-10T06:00:00Z"  # 14:00 local
    assert swap.use == pytest.approx(6 * PER_HOUR)  # the six silent hours, none lost
    assert claim.verdict == "verified", claim.reasons
    assert claim.measured == pytest.approx(truth * 1000 / POPULATION / 365)  # 150 but the first hour
    replaced = [r for r in claim.reasons if r.code == "meter_replaced"]
    assert len(replaced) == 1
    assert "UL100-1904118 replaced by UL100-2506001 at 2025-06-10 10:30" in replaced[0].en
    assert "recorded by 王丽" in replaced[0].en
    assert "换表" in replaced[0].zh
    assert "meter_reset" not in [r.code for r in claim.reasons]
    # what the swap's record supplied is estimated (from the edit log), the rest measured; all verified
    assert claim.basis is not None
    assert claim.basis.estimated == pytest.approx(6 * PER_HOUR)
    assert claim.basis.measured == pytest.approx(truth - 6 * PER_HOUR)
    assert claim.basis.verified == pytest.approx(truth)


def test_the_same_swap_without_a_record_is_flagged_as_an_unexplained_reset() -> None:
    *_, truth = _master_year()
    result, claim = _run(_site())
    audit = _audit(result)
    assert audit.resets == 1
    assert audit.reset_times == ["2025-06-10T06:00:00Z"]
    assert audit.replacements == []
    # the guess counts the new meter's reading as the interval's use: the old meter's water between
    # 08:00 and 10:30 is lost
    assert audit.total == pytest.approx(truth - 2.5 * PER_HOUR)
    assert claim.verdict == "not_verified"
    assert claim.basis is not None
    assert claim.basis.verified is None  # nothing verified
    assert claim.basis.estimated > 0  # the guessed interval at the reset
    reset = next(r for r in claim.reasons if r.code == "meter_reset")
    assert reset.en.startswith("master-meter volume_m3: the totalizer fell back 1 time(s) (2025-06-10 14:00;")
    assert "with no replacement record" in reset.en
    assert "2025-06-10 14:00" in reset.zh


def test_a_record_whose_final_reading_is_below_the_last_reading_is_named() -> None:
    _, last_old, _, _ = _master_year()
    result, claim = _run(_site(replacements=[_replacement(last_old - 10.0)]))
    assert claim.verdict == "not_verified"
    problem = next(r for r in claim.reasons if r.code == "replacement_final_below_last")
    assert (
        f"the old meter's final reading {last_old - 10.0:g} is below its reading {last_old:g} at 2025-06-10 08:00"
        in (problem.en)
    )
    assert _audit(result).resets == 0  # the record explains the drop, however wrongly


def test_a_record_at_a_time_the_readings_do_not_fall_is_named_and_the_drop_stays_unexplained() -> None:
    _, _, old_final, _ = _master_year()
    wrong_day = SWAP_AT + dt.timedelta(days=1)
    _, claim = _run(_site(replacements=[_replacement(old_final, wrong_day)]))
    codes = [r.code for r in claim.reasons]
    assert "replacement_no_drop" in codes
    assert "meter_reset" in codes
    assert claim.verdict == "not_verified"
    no_drop = next(r for r in claim.reasons if r.code == "replacement_no_drop")
    assert "the replacement recorded at 2025-06-11 10:30 contradicts the readings" in no_drop.en


# --- service life and verification interval ---------------------------------------------------------


def _meter(dn: int, installed: str, calibrated: str | None = None, accuracy: str = "2") -> dict[str, Any]:
    return {"serial": "M-1", "nominal_dn": dn, "accuracy_class": accuracy, "installed_on": installed,
            "calibrated_on": calibrated}  # fmt: skip


@pytest.mark.parametrize(
    ("meter", "code", "verdict"),
    [
        (_meter(25, "2019-12-31"), None, "verified"),  # exactly 6 years on 31 December 2025
        (_meter(25, "2019-12-30"), "meter_past_service_life", "partly_verified"),
        (_meter(32, "2021-12-31"), None, "verified"),  # exactly 4 years
        (_meter(32, "2021-12-30"), "meter_past_service_life", "partly_verified"),
        (_meter(80, "2015-04-01", "2023-12-31"), None, "verified"),  # verified exactly 2 years before
        (_meter(80, "2015-04-01", "2023-12-30"), "meter_calibration_overdue", "partly_verified"),
        (_meter(80, "2023-12-30"), "meter_calibration_overdue", "partly_verified"),  # none since installing
    ],
)
def test_service_life_and_verification_interval_are_judged_on_31_december(
    meter: dict[str, Any], code: str | None, verdict: str
) -> None:
    _, claim = _run(_site(meter=meter), swapped=False)
    codes = [r.code for r in claim.reasons]
    assert [c for c in codes if c.startswith("meter_")] == ([code] if code else [])
    assert claim.verdict == verdict
    (status,) = claim.meters
    assert (status.serial, status.judged_on, status.overdue) == ("M-1", "2025-12-31", code is not None)


def test_the_finding_says_which_dates_were_compared() -> None:
    _, claim = _run(_site(meter=_meter(25, "2019-12-30")), swapped=False)
    finding = next(r for r in claim.reasons if r.code == "meter_past_service_life")
    assert finding.en == (
        "master-meter: meter M-1 (DN25) installed 2019-12-30 reached the end of its 6-year service life on "
        "2025-12-30 and was still in use on 2025-12-31 (JJG 162)"
    )
    assert "使用期限" in finding.zh
    _, claim = _run(_site(meter=_meter(80, "2015-04-01", "2023-12-30")), swapped=False)
    finding = next(r for r in claim.reasons if r.code == "meter_calibration_overdue")
    assert "last verified 2023-12-30: its 2-year verification period ended on 2025-12-30" in finding.en


def test_a_meter_removed_before_its_time_ran_out_is_judged_on_its_removal_day() -> None:
    old = {**_meter(25, "2019-03-01"), "serial": "OLD", "removed_at": "2025-02-28T10:00:00+08:00"}
    _, claim = _run(_site(meter=_meter(25, "2025-02-28"), past_meters=[old]), swapped=False)
    assert claim.verdict == "verified", claim.reasons
    assert [(m.serial, m.judged_on, m.overdue) for m in claim.meters] == [
        ("OLD", "2025-02-28", False),
        ("M-1", "2025-12-31", False),
    ]


def test_a_meter_without_registry_data_is_said_so_without_changing_the_verdict() -> None:
    _, claim = _run(_site(meter=None), swapped=False)
    assert claim.verdict == "verified"
    unregistered = [r for r in claim.reasons if r.code == "meter_unregistered"]
    assert [r.en for r in unregistered] == [
        "master-meter: no meter in the registry (serial, size, verification date); its service life and "
        "verification interval are not checked"
    ]
    assert claim.meters == []


def test_the_registered_accuracy_class_sets_the_uncertainty() -> None:
    # a claim 1.5 % below the measurement: within a class-2 meter's 2 %, outside a class-1 meter's 1 %
    site = _site(meter=_meter(100, "2019-04-11", "2025-02-21", accuracy="2"))
    raw = site.model_dump()
    for claim in raw["districts"][0]["communities"][0]["claims"]:
        if claim["id"] == "per-capita":
            claim["value"] = 150.0 * 0.985
    _, class_2 = _run(Site.model_validate(raw), swapped=False)
    assert (class_2.verdict, class_2.uncertainty) == ("verified", pytest.approx(0.02))
    raw["districts"][0]["communities"][0]["facilities"][3]["devices"][0]["meter"]["accuracy_class"] = "1"
    _, class_1 = _run(Site.model_validate(raw), swapped=False)
    assert (class_1.verdict, class_1.uncertainty) == ("partly_verified", pytest.approx(0.01))
