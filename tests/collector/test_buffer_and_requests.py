"""The durable buffer (a real SQLite file) and request planning, without servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.buffer import Buffer, BufferFull
from collector.pipeline import DeviceState
from collector.requests import ReadRequest, plan_requests
from devices.profile import Profile, find_profile


def test_commit_is_atomic_and_survives_reopening(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", max_lines=10)
    state = DeviceState(last={"volume_m3": 12.5}, last_time_ns=7, seen=["1", "2"])
    assert buffer.commit(["m v=1 1", "m v=2 2"], {"c/d": state}, {"accepted_modbus": 2}) == 2
    buffer.commit(["m v=3 3"], counts={"accepted_modbus": 1})
    buffer.close()
    again = Buffer(tmp_path / "b.sqlite3", max_lines=10)
    assert again.depth == 3
    assert [line for _, line in again.peek(10)] == ["m v=1 1", "m v=2 2", "m v=3 3"]
    assert again.states() == {"c/d": state}
    assert again.counters() == {"accepted_modbus": 3}


def test_full_buffer_refuses_the_whole_batch_and_keeps_state_unchanged(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", max_lines=3)
    buffer.commit(["a v=1 1", "a v=2 2"])
    with pytest.raises(BufferFull, match="holds 2 lines; 2 more exceed its bound of 3"):
        buffer.commit(["a v=3 3", "a v=4 4"], {"c/d": DeviceState(last={"x": 1.0})}, {"accepted_mqtt": 2})
    assert buffer.depth == 2
    assert buffer.states() == {}
    assert buffer.counters() == {}


def test_lines_leave_only_when_removed_in_order(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    buffer.commit([f"m v={i} {i}" for i in range(5)])
    rows = buffer.peek(3)
    assert buffer.remove_through(rows[-1][0]) == 3
    assert [line for _, line in buffer.peek(10)] == ["m v=3 3", "m v=4 4"]
    buffer.replace_refused([buffer.peek(1)[0][0]], [], {})
    assert buffer.depth == 1
    assert buffer.oldest_age_s() >= 0


def test_a_refused_batch_is_replaced_by_its_dead_letters_even_in_a_full_buffer(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", max_lines=3, reserve_bytes=0)
    buffer.commit(["a v=1 1", "a v=2 2", "a v=3 3"])  # full: the bound is reached
    batch = [row_id for row_id, _ in buffer.peek(2)]
    # the batch's second line was refused for good: its dead letter replaces the batch, atomically
    buffer.replace_refused(
        batch, ['dead_letter,reason=store_rejected raw="a v=2 2" 9'], {"dead_letter:store_rejected": 1}
    )
    assert [line for _, line in buffer.peek(10)] == [
        "a v=3 3",
        'dead_letter,reason=store_rejected raw="a v=2 2" 9',
    ]
    assert buffer.depth == 2
    assert buffer.counters() == {"dead_letter:store_rejected": 1}


def test_requests_merge_as_the_profile_allows() -> None:
    assert plan_requests(find_profile("hy-rwc200")) == [
        ReadRequest("coil", 0, 1),
        ReadRequest("holding", 0, 21),
    ]
    # lq-rhc10 allows gaps of 2: its unused register 115 is read through
    assert plan_requests(find_profile("lq-rhc10")) == [
        ReadRequest("discrete", 0, 1),
        ReadRequest("input", 100, 22),
    ]
    assert plan_requests(find_profile("wx-cw01")) == []


def _with_limits(max_per_request: int, max_gap: int) -> Profile:
    base = find_profile("lq-rhc10")
    assert base.modbus is not None
    modbus = base.modbus.model_copy(update={"max_registers_per_request": max_per_request, "max_gap": max_gap})
    return base.model_copy(update={"modbus": modbus})


def test_requests_split_at_gaps_and_size_limits() -> None:
    no_gaps = [r for r in plan_requests(_with_limits(125, 0)) if r.table == "input"]
    assert no_gaps == [ReadRequest("input", 100, 15), ReadRequest("input", 116, 6)]
    small = [r for r in plan_requests(_with_limits(8, 2)) if r.table == "input"]
    assert all(r.count <= 8 for r in small)
    covered = {a for r in small for a in range(r.address, r.end)}
    assert covered >= set(range(100, 115)) | set(range(116, 122))


def test_seen_ids_are_stored_as_they_come_and_the_window_survives_reopening(tmp_path: Path) -> None:
    from collector.pipeline import SEEN_WINDOW, remember

    buffer = Buffer(tmp_path / "b.sqlite3")
    state = DeviceState()
    for batch in range(5):  # 5 batches of 600 messages: the window (1,024) fills and slides
        for i in range(600):
            _, state = remember(state, f"{batch}-{i}")
        buffer.commit([f"m v={batch} {batch}"], {"c/d": state})
    rows = buffer._db.execute("SELECT count(*), min(n), max(n) FROM seen WHERE device = 'c/d'").fetchone()
    assert rows == (SEEN_WINDOW, 3000 - SEEN_WINDOW + 1, 3000)  # only the window is kept
    buffer.close()
    again = Buffer(tmp_path / "b.sqlite3").states()["c/d"]
    assert again == state
    assert again.seen[-1] == "4-599"
    duplicate, _ = remember(again, "4-100")
    assert duplicate  # a redelivered message is still recognised after a restart
    fresh, _ = remember(again, "0-0")  # long gone from the window
    assert not fresh


def test_a_buffer_from_before_the_seen_table_is_migrated(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "old.sqlite3"
    Buffer(path).close()
    legacy = json.dumps({"last": {"x": 1.0}, "t": 5, "seen": ["a", "b", "c"], "resets": 0})
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO device_state (device, state) VALUES ('c/d', ?)", (legacy,))
    buffer = Buffer(path)
    state = buffer.states()["c/d"]
    assert (state.seen, state.seen_total, state.last) == (["a", "b", "c"], 3, {"x": 1.0})
    stored = buffer._db.execute("SELECT state FROM device_state").fetchone()[0]
    assert "seen_total" in stored
    assert '"seen": [' not in stored
