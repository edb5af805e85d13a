"""The collector's pipeline, pure: decoding, validation, totalizers, de-duplication, dead letters."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from collector.pipeline import (
    SEEN_SLACK,
    SEEN_WINDOW,
    DeadLetter,
    DeviceRef,
    DeviceState,
    Limits,
    Reading,
    delta_field,
    process_modbus,
    process_mqtt,
    remember,
    stamp,
    totalize,
)
from devices.profile import find_profile
from devices.registers import encode_values
from simulators.model import SiteModel
from tests.collector.malformed import GOOD, mqtt_cases
from tests.simulators.conftest import make_site

NOW_MS = 1_795_000_000_000
NOW_NS = NOW_MS * 1_000_000
WASH = DeviceRef("changning", "xinjing-6", "car-wash-1", find_profile("wx-cw01"), "c1")
METER = DeviceRef("changning", "xinjing-6", "master-meter", find_profile("ul-wm100"), "c1")
RAIN_B = DeviceRef("changning", "xinjing-6", "rw-controller-b", find_profile("lq-rhc10"), "c1")


@pytest.mark.parametrize(
    ("case", "payload", "reason", "text"), mqtt_cases(NOW_MS), ids=[c[0] for c in mqtt_cases(NOW_MS)]
)
def test_malformed_payload_becomes_a_dead_letter_with_a_precise_reason(
    case: str, payload: bytes, reason: str, text: str
) -> None:
    result, state = process_mqtt(WASH, DeviceState(), payload, NOW_NS, Limits(), topic="t")
    assert isinstance(result, DeadLetter), case
    assert result.reason == reason
    assert text in result.message, result.message
    assert result.device == WASH
    assert state == DeviceState()  # a refused message changes nothing
    point = result.point("c1")
    assert point.measurement == "dead_letter"
    assert point.tags["reason"] == reason
    assert point.tags["device"] == "car-wash-1"
    assert len(str(point.fields["raw"])) <= 512


def test_the_malformed_corpus_is_large_and_distinct() -> None:
    cases = mqtt_cases(NOW_MS)
    assert len(cases) >= 50
    assert len({c[1] for c in cases}) == len(cases)  # no payload twice


def test_good_payload_becomes_a_reading_with_quantities_in_profile_units() -> None:
    body = json.dumps({**GOOD, "ts": NOW_MS}).encode()
    result, state = process_mqtt(WASH, DeviceState(), body, NOW_NS, Limits())
    assert isinstance(result, Reading)
    assert result.values == {
        "wash_count": 12, "vehicle_class": "sedan", "wash_l": 1.2, "recycled_l": 0.5,
        "fresh_m3": pytest.approx(0.015), "recycled_m3": pytest.approx(0.006),
    }  # fmt: skip
    assert result.time_ns == NOW_NS + 7  # the sequence number breaks same-millisecond ties
    assert result.deltas == {}  # first reading: nothing to subtract
    assert state.last["wash_count"] == 12
    line = result.points()[0].to_line()
    assert line.startswith(
        "car_wash,collector=c1,community=xinjing-6,device=car-wash-1,district=changning,kind=car_wash,profile=wx-cw01@1 "
    )
    assert f'raw_sha256="{result.raw_sha256}"' in line


def test_duplicate_message_is_dropped_once_counted() -> None:
    body = json.dumps({**GOOD, "ts": NOW_MS}).encode()
    first, state = process_mqtt(WASH, DeviceState(), body, NOW_NS, Limits())
    again, state2 = process_mqtt(WASH, state, body, NOW_NS + 10**9, Limits())
    assert isinstance(first, Reading)
    assert again is None
    assert state2.last == state.last


def test_out_of_order_message_is_kept_but_not_counted_twice() -> None:
    def msg(seq: int, count: int, fresh_l: float, t_ms: int) -> bytes:
        return json.dumps(
            {**GOOD, "seq": seq, "ts": t_ms, "wash_count": count, "fresh_total_l": fresh_l}
        ).encode()

    state = DeviceState()
    _, state = process_mqtt(WASH, state, msg(1, 10, 100.0, NOW_MS), NOW_NS, Limits())
    r3, state = process_mqtt(
        WASH, state, msg(3, 12, 103.0, NOW_MS + 2000), NOW_NS, Limits()
    )  # 2 arrives late
    r2, state = process_mqtt(WASH, state, msg(2, 11, 101.5, NOW_MS + 1000), NOW_NS, Limits())
    assert isinstance(r3, Reading)
    assert isinstance(r2, Reading)
    assert r3.deltas["wash_count"] == 2
    assert r3.deltas["fresh_m3"] == pytest.approx(0.003)
    assert r2.late
    assert r2.deltas == {"wash_count": 0.0, "fresh_m3": 0.0, "recycled_m3": 0.0}
    assert state.last["wash_count"] == 12  # the late one did not move the totalizer back


def test_skewed_clock_is_restamped_and_recorded() -> None:
    assert stamp(NOW_NS + 3600 * 10**9, NOW_NS, Limits()) == (NOW_NS, 3600.0)
    assert stamp(NOW_NS + 60 * 10**9, NOW_NS, Limits()) == (NOW_NS + 60 * 10**9, None)  # within tolerance
    assert stamp(NOW_NS - 86400 * 10**9, NOW_NS, Limits()) == (NOW_NS - 86400 * 10**9, None)  # late delivery
    body = json.dumps({**GOOD, "ts": NOW_MS + 3_600_000}).encode()
    reading, _ = process_mqtt(WASH, DeviceState(), body, NOW_NS, Limits())
    assert isinstance(reading, Reading)
    assert reading.clock_skew_s == 3600.0
    assert "clock_skew_s=3600" in reading.points()[0].to_line()


def _blocks(profile_ref: str, values: dict[str, float | bool]) -> dict[str, dict[int, int]]:
    image = encode_values(find_profile(profile_ref), values)
    return {table: regs for table, regs in image.items() if regs}


def test_modbus_poll_decodes_and_counts_consumption() -> None:
    state = DeviceState()
    r1, state = process_modbus(
        METER, state, _blocks("ul-wm100", {"volume_m3": 1000.0, "flow_m3h": 5.0, "alarm_code": 0}), NOW_NS
    )
    r2, state = process_modbus(
        METER,
        state,
        _blocks("ul-wm100", {"volume_m3": 1000.25, "flow_m3h": 5.0, "alarm_code": 0}),
        NOW_NS + 60 * 10**9,
    )
    assert isinstance(r1, Reading)
    assert isinstance(r2, Reading)
    assert r1.deltas == {}
    assert r2.deltas == {"volume_m3": pytest.approx(0.25)}
    assert r2.values["alarm_code"] == 0
    assert isinstance(r2.values["alarm_code"], int)
    assert delta_field("volume_m3") == "volume_delta_m3"
    assert "volume_delta_m3=0.25" in r2.points()[0].to_line()


@pytest.mark.parametrize(
    ("blocks", "reason", "text"),
    [
        ({"holding": {0: 0, 1: 5}}, "decode", "flow_m3h: registers holding 2+2 missing"),
        ({}, "decode", "volume_m3: registers holding 0+2 missing"),
        (
            {"holding": {0: 70000, 1: 0, 2: 0, 3: 0, 4: 0}},
            "decode",
            "register value 70000 is outside 0..65535",
        ),
        (
            {"holding": {0: 0, 1: 0, 2: 0, 3: 0x7FC0, 4: 0}},
            "decode",
            "flow_m3h at holding 2: f32 registers [0, 32704] hold nan",
        ),
        ({"holding": {0: 0, 1: 0, 2: 0, 3: 0x7F80, 4: 0}}, "decode", "hold inf, not a number"),
        (
            {"holding": {0: 0, 1: 0, 2: 0, 3: 0xC47A, 4: 0}},
            "range",
            "flow_m3h = -1000 m3/h is below its minimum 0",
        ),
        (
            {"holding": {0: 0, 1: 0, 2: 0, 3: 0x447A, 4: 0}},
            "range",
            "flow_m3h = 1000 m3/h is above its maximum 250",
        ),
    ],
)
def test_bad_registers_become_dead_letters(blocks: dict[str, dict[int, int]], reason: str, text: str) -> None:
    result, state = process_modbus(METER, DeviceState(), blocks, NOW_NS)
    assert isinstance(result, DeadLetter)
    assert (result.reason, state) == (reason, DeviceState())
    assert text in result.message
    assert result.raw.startswith("holding:") or result.raw == ""


def test_bool_and_percent_out_of_range_from_a_rainwater_controller() -> None:
    blocks = _blocks("lq-rhc10", {q.name: 1.0 for q in RAIN_B.profile.quantities})
    blocks["input"][104], blocks["input"][105] = 0x0000, 0x42CA  # level_pct as CDAB float: 101.0
    result, _ = process_modbus(RAIN_B, DeviceState(), blocks, NOW_NS)
    assert isinstance(result, DeadLetter)
    assert result.message == "level_pct = 101 % is above its maximum 100"


def test_rollover_and_reset_never_give_negative_or_huge_use() -> None:
    profile = RAIN_B.profile  # supply_m3 is a 16-bit counter in 0.1 m3: it wraps at 6553.6
    state = DeviceState(last={"supply_m3": 6553.0}, last_time_ns=1)
    deltas, events, state, _ = totalize(profile, state, {"supply_m3": 0.4}, 2)
    assert deltas["supply_m3"] == pytest.approx(1.0)
    assert [e.kind for e in events] == ["rollover"]
    deltas, events, state, _ = totalize(profile, state, {"supply_m3": 0.1}, 3)
    assert deltas["supply_m3"] == pytest.approx(0.1)  # a reset (replaced meter starts from 0)
    assert [e.kind for e in events] == ["reset"]
    assert state.resets == 1


def _through_pipeline(
    device_id: str, quantity: str, faults: list[dict[str, object]], tmp_path: Path
) -> tuple[float, float]:
    """Feed a week of a simulated meter (with faults) through the pipeline; return (sum of deltas,
    true consumption over the same readings)."""
    site = make_site(tmp_path, "tcp", faults={device_id: faults})
    model = SiteModel(site, seed=4)
    profile = None
    shown: list[np.ndarray] = []
    true: list[np.ndarray] = []
    for i in range(7):
        for day in model.day(dt.date(2025, 7, 1) + dt.timedelta(days=i)):
            if day.device == device_id:
                profile = day.profile
                shown.append(np.asarray(day.values[quantity], dtype=float))
                true.append(day.true_steps[quantity])
    assert profile is not None
    state = DeviceState()
    total = 0.0
    values = np.concatenate(shown)
    for i, value in enumerate(values):
        deltas, _, state, _ = totalize(profile, state, {quantity: float(value)}, i + 1)
        total += deltas.get(quantity, 0.0)
    truth = float(np.concatenate(true)[1:].sum())  # the first reading has nothing before it
    return total, truth


def test_meter_reset_yields_the_true_consumption(tmp_path: Path) -> None:
    reset_at = dt.datetime(2025, 7, 3, 12, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat()
    total, truth = _through_pipeline(
        "master-meter", "volume_m3", [{"kind": "reset", "quantity": "volume_m3", "start": reset_at}], tmp_path
    )
    assert total == pytest.approx(truth, rel=0.021, abs=0.01)  # class-2 meter bias, 1 L resolution


def test_register_rollover_yields_the_true_consumption(tmp_path: Path) -> None:
    total, truth = _through_pipeline(
        "rw-controller-b",
        "supply_m3",
        [{"kind": "rollover", "quantity": "supply_m3", "before_wrap": 20}],
        tmp_path,
    )
    assert truth > 2.0  # the week moved enough water to wrap the counter
    assert total == pytest.approx(truth, rel=0.021, abs=0.11)


def test_seen_window_covers_every_message_the_broker_may_deliver_again() -> None:
    from collector.sources.mqtt import MqttOptions

    # unacknowledged messages come back after a crash: at most the receive maximum, in all devices
    assert MqttOptions(client_id="x").receive_maximum <= SEEN_WINDOW


def test_seen_window_is_bounded() -> None:
    state = DeviceState()
    for i in range(3000):
        _, state = remember(state, str(i))
    assert len(state.seen) == SEEN_WINDOW
    duplicate, _ = remember(state, "2999")
    assert duplicate
    assert state.seen_total == 3000
    assert "seen" not in json.loads(state.to_json())  # the ids go to rows of their own (collector/buffer.py)
    assert DeviceState.from_json(state.to_json(), list(state.seen)) == state


def test_shared_subscription_readings_carry_no_deltas() -> None:
    state = DeviceState()
    for seq, count in ((1, 10), (2, 11)):
        body = json.dumps({**GOOD, "ts": NOW_MS + seq, "seq": seq, "wash_count": count}).encode()
        reading, state = process_mqtt(WASH, state, body, NOW_NS, Limits(), with_deltas=False)
        assert isinstance(reading, Reading)
        assert reading.deltas == {}
    duplicate, _ = process_mqtt(WASH, state, body, NOW_NS, Limits(), with_deltas=False)
    assert duplicate is None  # de-duplication still works within one collector


def test_seen_window_is_a_value_older_states_keep_theirs() -> None:
    """`remember` is pure: the state before a message still answers as before, even though the new
    window shares its storage (the collector keeps the old state when a batch cannot be stored)."""
    from collector.pipeline import SeenWindow

    before = DeviceState()
    for i in range(10):
        _, before = remember(before, str(i))
    dup, after = remember(before, "new")
    assert not dup
    assert "new" in after.seen
    assert "new" not in before.seen  # the older state did not see it
    assert not remember(before, "new")[0]  # and still takes it as new (its own copy)
    branch_dup, branch = remember(before, "other")
    assert not branch_dup
    assert list(branch.seen)[-2:] == ["9", "other"]
    assert list(after.seen)[-2:] == ["9", "new"]  # the first successor is untouched by the branch
    # many ids through a small window: the oldest fall out, storage is compacted, content stays right
    window = SeenWindow()
    for i in range(1000):
        window, dropped = window.added(str(i), 7)
        assert dropped == ([str(i - 7)] if i >= 7 else [])
    assert list(window) == [str(i) for i in range(993, 1000)]
    assert len(window._ids) <= 7 + SEEN_SLACK + 1  # few dead ids kept before compaction
