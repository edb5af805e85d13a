"""The meter registry's pure logic: consumption across a recorded swap (evidence.meters, the collector's
totalizers and verification's consumption agreeing), records that contradict the readings, the service
life and verification interval at their boundary days, and the registry recorded elsewhere merged
into a device."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from collector.pipeline import DeviceRef, DeviceState, process_modbus, totalize
from devices.profile import find_profile
from devices.registers import encode_values
from evidence.meters import (
    NS,
    SHANGHAI,
    Swap,
    add_years,
    interval_use,
    merge_device,
    meter_at,
    meter_due,
    meters_in_service,
    swap_of,
    swap_problems,
    swaps_between,
    swaps_of,
    with_recorded_meters,
)
from jieshui.inventory import Device, MeterInfo, Replacement, load_site
from tests.verification.conftest import ROOT
from verification import checks

HOUR = 3600 * NS
T0 = 1_750_000_000 * NS  # 2025-06-15 23:06:40 Asia/Shanghai
METER = find_profile("ul-wm100")


def _swap(at_ns: int, old_final: float, new_first: float, quantity: str = "volume_m3") -> Swap:
    return Swap(at_ns, quantity, old_final, new_first)


# --- the arithmetic --------------------------------------------------------------------------------


def test_use_across_a_swap_is_the_old_meters_rest_plus_the_new_meters_start() -> None:
    # last old reading L = 1000.0, the old meter showed F_old = 1000.8 when taken out, the new one
    # F_new = 0.2 when fitted, and R = 1.5 at the first reading after: 0.8 + 1.3
    assert interval_use(1000.0, 1.5, [_swap(T0, 1000.8, 0.2)]) == pytest.approx(2.1)


def test_two_swaps_in_one_interval_chain_through_the_meter_between() -> None:
    swaps = [_swap(T0, 100.5, 0.0), _swap(T0 + HOUR, 3.0, 10.0)]  # a faulty meter in for an hour
    assert interval_use(100.0, 12.0, swaps) == pytest.approx(0.5 + 3.0 + 2.0)


def test_a_contradicted_part_counts_zero_never_negative() -> None:
    assert interval_use(1000.0, 1.5, [_swap(T0, 990.0, 0.2)]) == pytest.approx(1.3)
    assert interval_use(1000.0, 0.1, [_swap(T0, 1000.8, 0.2)]) == pytest.approx(0.8)


def test_a_record_that_fits_the_readings_has_no_problem() -> None:
    assert swap_problems(1000.0, 1.5, [_swap(T0, 1000.8, 0.2)]) == []
    # within the tolerance of a dial read and rounded (0.05)
    assert swap_problems(1000.04, 0.16, [_swap(T0, 1000.0, 0.2)]) == []


def test_records_contradicting_the_readings_are_named() -> None:
    swap = _swap(T0, 998.0, 0.2)
    assert swap_problems(1000.0, 1.5, [swap]) == [("final_below_last", swap)]
    swap = _swap(T0, 1000.8, 5.0)
    assert swap_problems(1000.0, 1.5, [swap]) == [("first_above_next", swap)]
    # the new meter started at 0.2, yet the readings rise across the recorded time: no swap there
    swap = _swap(T0, 1000.8, 0.2)
    assert swap_problems(1000.0, 1001.3, [swap]) == [("no_drop", swap)]


def test_a_new_meter_starting_above_the_old_one_needs_no_drop() -> None:
    # a refurbished meter showing 5000: the readings rise across the swap, and that is right
    swap = _swap(T0, 1000.8, 5000.0)
    assert swap_problems(1000.0, 5001.0, [swap]) == []
    assert interval_use(1000.0, 5001.0, [swap]) == pytest.approx(1.8)


def test_a_swap_belongs_to_the_interval_from_the_last_old_reading_to_the_first_new_one() -> None:
    swaps = [_swap(T0, 1.0, 0.0), _swap(T0, 1.0, 0.0, "supply_m3")]
    assert swaps_between(swaps, "volume_m3", T0 - HOUR, T0) == [swaps[0]]  # a reading at the swap: new
    assert swaps_between(swaps, "volume_m3", T0, T0 + HOUR) == []


def test_a_swap_stamped_at_a_reading_makes_that_reading_the_new_meters() -> None:
    at = dt.datetime.fromtimestamp((T0 + HOUR) // NS, tz=dt.UTC).astimezone(SHANGHAI)
    swap = swap_of(Replacement(quantity="volume_m3", replaced_at=at, old_serial="A", old_final_reading=100.2,
                               new_serial="B", new_first_reading=0.0, recorded_by="x"))  # fmt: skip
    assert swap.time_ns == T0 + HOUR  # exactly: no float timestamp in between
    t = np.array([T0, T0 + HOUR, T0 + 2 * HOUR], dtype=np.int64)
    use = checks.consumption(t, np.array([100.0, 0.5, 1.5]), swaps=[swap])
    assert [i.index for i in use.swapped] == [0]
    np.testing.assert_allclose(use.delta, [0.2 + 0.5, 1.0])


# --- verification and the collector agree ---------------------------------------------------------


def _series() -> tuple[np.ndarray, np.ndarray, float, Swap]:
    """Hourly readings with a swap at T0 + 10.5 h during a silence from 9 h to 14 h: the old meter ran
    from 5000 at 2 m3/h, the new one from 0.3. Returns (times, readings, true use, the swap)."""
    hours = np.array([h for h in range(24) if not 9 < h < 14], dtype=np.int64)
    swap_at = T0 + int(10.5 * HOUR)
    true = 2.0 * hours.astype(float)  # what flowed since T0
    old = 5000.0 + true
    new = 0.3 + (true - 2.0 * 10.5)
    t = T0 + hours * HOUR
    v = np.where(t < swap_at, old, new)
    return t, v, float(true[-1] - true[0]), _swap(swap_at, 5000.0 + 21.0, 0.3)


def test_recorded_swap_gives_the_true_use_and_no_reset() -> None:
    t, v, truth, swap = _series()
    use = checks.consumption(t, v, swaps=[swap])
    assert float(use.delta.sum()) == pytest.approx(truth)
    assert use.resets == []
    (interval,) = use.swapped
    assert (interval.last, interval.first) == (5018.0, pytest.approx(7.3))
    assert interval.use == pytest.approx(10.0)  # 9 h to 14 h at 2 m3/h
    assert interval.problems == ()


def test_the_same_swap_without_a_record_is_an_unexplained_reset_that_loses_water() -> None:
    t, v, truth, _ = _series()
    use = checks.consumption(t, v)
    assert use.resets == [9]  # the interval ending at the first reading after the silence
    assert use.time_ns[9] == T0 + 14 * HOUR
    # the guess (a new meter starting from 0: R) lost the old meter's last 3 m3 and gained 0.3
    assert float(use.delta.sum()) == pytest.approx(truth - 3.0 + 0.3)
    assert use.swapped == []


def test_a_swap_outside_the_readings_changes_nothing() -> None:
    t, v, _, _ = _series()
    before = _swap(int(t[0]) - HOUR, 1.0, 0.0)
    after = _swap(int(t[-1]) + HOUR, 1.0, 0.0)
    use = checks.consumption(t, v, swaps=[before, after])
    assert use.swapped == []
    assert use.resets == [9]


def test_collector_deltas_use_the_recorded_swap_as_verification_does() -> None:
    t, v, truth, swap = _series()
    state = DeviceState()
    total, kinds = 0.0, []
    for time_ns, value in zip(t.tolist(), v.tolist(), strict=True):
        deltas, events, state, _ = totalize(METER, state, {"volume_m3": value}, time_ns, [swap])
        total += deltas.get("volume_m3", 0.0)
        kinds += [e.kind for e in events]
    assert total == pytest.approx(truth)
    assert total == pytest.approx(float(checks.consumption(t, v, swaps=[swap]).delta.sum()))
    assert kinds == ["replacement"]
    assert state.resets == 0
    # without the record: the collector's reset guess, as verification's
    state, total = DeviceState(), 0.0
    for time_ns, value in zip(t.tolist(), v.tolist(), strict=True):
        deltas, _, state, _ = totalize(METER, state, {"volume_m3": value}, time_ns)
        total += deltas.get("volume_m3", 0.0)
    assert total == pytest.approx(float(checks.consumption(t, v).delta.sum()))
    assert state.resets == 1


def test_a_polled_reading_after_a_recorded_swap_stores_the_recorded_delta_and_a_replacement_event() -> None:
    ref = DeviceRef(
        "changning", "xinjing-6", "master-meter", METER, "c1", (_swap(T0 + HOUR // 2, 10.4, 0.0),)
    )
    state = DeviceState(last={"volume_m3": 10.0}, last_time_ns=T0)
    blocks = encode_values(METER, {"volume_m3": 0.25, "flow_m3h": 1.0, "alarm_code": 0})
    reading, state = process_modbus(ref, state, blocks, T0 + HOUR)
    lines = [p.to_line() for p in reading.points()]  # type: ignore[union-attr]
    assert reading.deltas == {"volume_m3": pytest.approx(0.65)}  # type: ignore[union-attr]
    assert any(line.startswith("meter_event,") and "event=replacement" in line for line in lines)
    assert state.resets == 0


# --- service life and verification interval (JJG 162) ---------------------------------------------


@pytest.mark.parametrize(
    ("dn", "installed", "calibrated", "rule", "due"),
    [
        (15, "2019-12-31", None, "service_life", "2025-12-31"),
        (25, "2019-12-31", None, "service_life", "2025-12-31"),
        (32, "2021-12-31", None, "service_life", "2025-12-31"),
        (50, "2021-12-31", "2023-05-01", "service_life", "2025-12-31"),  # a verification does not extend it
        (65, "2015-01-01", "2023-12-31", "calibration", "2025-12-31"),
        (80, "2023-12-31", None, "calibration", "2025-12-31"),  # none recorded: from the installation
    ],
)
def test_the_rule_and_due_date_follow_the_size(
    dn: int, installed: str, calibrated: str | None, rule: str, due: str
) -> None:
    found = meter_due(
        dn, dt.date.fromisoformat(installed), dt.date.fromisoformat(calibrated) if calibrated else None
    )
    assert (found.rule, found.due.isoformat()) == (rule, due)
    # at exactly 6 (4, 2) years the meter is still within them; the next day it is not
    assert not found.overdue(found.due)
    assert found.overdue(found.due + dt.timedelta(days=1))


def test_a_leap_day_installation_falls_due_on_28_february() -> None:
    assert add_years(dt.date(2020, 2, 29), 6) == dt.date(2026, 2, 28)
    assert add_years(dt.date(2020, 2, 29), 4) == dt.date(2024, 2, 29)


def _meter(serial: str, installed: str, removed: str | None = None, dn: int = 25) -> MeterInfo:
    return MeterInfo.model_validate(
        {"serial": serial, "nominal_dn": dn, "installed_on": installed,
         "removed_at": dt.datetime.fromisoformat(removed) if removed else None}
    )  # fmt: skip


def _device(**update: Any) -> Device:
    site = load_site(ROOT / "examples" / "community.yaml")
    _, community = site.community("xinjing-6")
    device = next(d for _, d in community.devices() if d.id == "master-meter")
    return device.model_copy(update=update)


def test_meters_in_service_in_a_year_are_judged_at_its_end_or_at_their_removal() -> None:
    device = _device(
        meter=_meter("NEW", "2025-03-01"),
        past_meters=[
            _meter("OLDEST", "2012-01-01", "2019-03-01T09:00:00+08:00"),
            _meter("OLD", "2019-03-01", "2025-03-01T09:00:00+08:00"),
        ],
    )
    serving = meters_in_service(device, dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    assert [(m.serial, on.isoformat()) for m, on in serving] == [("OLD", "2025-03-01"), ("NEW", "2025-12-31")]
    assert [m.serial for m, _ in meters_in_service(device, dt.date(2018, 1, 1), dt.date(2018, 12, 31))] == [
        "OLDEST"
    ]
    assert meter_at(device, dt.datetime(2025, 3, 1, 9, tzinfo=SHANGHAI)).serial in ("OLD", "NEW")  # type: ignore[union-attr]
    assert meter_at(device, dt.datetime(2024, 6, 1, tzinfo=SHANGHAI)).serial == "OLD"  # type: ignore[union-attr]
    assert meter_at(device, dt.datetime(2011, 6, 1, tzinfo=SHANGHAI)) is None


# --- the registry recorded through the API, merged into the inventory -----------------------------


def _row(**fields: Any) -> Any:
    return SimpleNamespace(**fields)


def test_a_recorded_meter_takes_the_place_of_the_inventorys_and_a_later_record_supersedes() -> None:
    device = _device()
    inventory_serial = device.meter.serial  # type: ignore[union-attr]
    at = dt.datetime(2025, 6, 10, 10, 30, tzinfo=SHANGHAI)
    first = Replacement(quantity="volume_m3", replaced_at=at, old_serial=inventory_serial, old_final_reading=9.0,
                        new_serial="NEW-1", new_first_reading=0.0, recorded_by="k1")  # fmt: skip
    corrected = first.model_copy(update={"old_final_reading": 9.5, "recorded_by": "k2"})
    merged = merge_device(device, [_meter("NEW-1", "2025-06-10", dn=100)], [first, corrected])
    assert merged.meter is not None
    assert merged.meter.serial == "NEW-1"
    assert [m.serial for m in merged.past_meters] == [inventory_serial]
    assert merged.past_meters[0].removed_at == dt.datetime(2025, 6, 10, tzinfo=SHANGHAI)
    assert [(r.old_final_reading, r.recorded_by) for r in merged.replacements] == [(9.5, "k2")]
    assert swaps_of(merged) == (Swap(int(at.timestamp()) * NS, "volume_m3", 9.5, 0.0),)


def test_rows_recorded_through_the_api_join_their_devices_only() -> None:
    site = load_site(ROOT / "examples" / "community.yaml")
    at = dt.datetime(2025, 6, 10, 2, 30, tzinfo=dt.UTC)
    common = {"community": "xinjing-6", "device": "master-meter"}
    meters = [_row(id=1, serial="NEW-1", nominal_dn=100, accuracy_class="1", installed_on=dt.date(2025, 6, 10),
                   calibrated_on=None, removed_at=None, **common),
              _row(id=2, serial="X", nominal_dn=25, accuracy_class="2", installed_on=dt.date(2025, 1, 1),
                   calibrated_on=None, removed_at=None, community="elsewhere", device="d")]  # fmt: skip
    events = [_row(id=1, quantity="volume_m3", replaced_at=at, old_serial="UL100-1904118", old_final_reading=9.0,
                   new_serial="NEW-1", new_first_reading=0.0, recorded_by="k1", recorded_at=at, note="", **common)]  # fmt: skip
    merged = with_recorded_meters(site, cast(Any, meters), cast(Any, events))
    _, community = merged.community("xinjing-6")
    device = next(d for _, d in community.devices() if d.id == "master-meter")
    assert device.meter is not None
    assert (device.meter.serial, device.meter.accuracy_class) == ("NEW-1", "1")
    assert [r.new_serial for r in device.replacements] == ["NEW-1"]
    others = [d for _, d in community.devices() if d.id != "master-meter"]
    assert all(not d.replacements for d in others)
    assert with_recorded_meters(site, [], []) is site
