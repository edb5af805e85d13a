"""The buffer's disk fills up (another program's file grows until the disk is full): the collector
refuses new readings loudly (Modbus polls counted, MQTT messages left with the broker), keeps writing
and deleting what it holds thanks to its reserve, and accepts again by itself once there is room."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.faults.conftest import FaultRig, cycles, metric


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = disk / "runaway.log"
    with filler.open("ab", buffering=0) as f, pytest.raises(OSError, match="No space left") as raised:
        _write_forever(f)
    assert raised.value.errno == errno.ENOSPC
    return filler


def _write_forever(f: BinaryIO) -> None:
    block = b"x" * 65536
    while True:
        f.write(block)


def test_buffer_disk_full(small_disk_rig: FaultRig) -> None:
    rig = small_disk_rig
    disk = rig.collector.buffer.parent
    assert (disk / "buffer.sqlite3.reserve").stat().st_size == 8 * 2**20
    for _ in cycles():
        filler = fill(disk)
        rig.wait_until(lambda: rig.collector.health()["buffer_disk_full"] is True, "the collector notices")
        time.sleep(2.0)  # refusing: the broker keeps the car wash's messages meanwhile
        full = rig.collector.metrics()
        health = rig.collector.health()
        assert health["status"] == "degraded"
        assert metric(full, "jieshui_buffer_disk_full") == 1
        assert metric(full, "jieshui_buffer_full_total", source="modbus") > 0
        filler.unlink()  # the operator frees space; nothing is restarted
        rig.wait_until(
            lambda: rig.collector.health()["buffer_disk_full"] is False, "the collector accepts again"
        )
        rig.wait_writing()
        assert (disk / "buffer.sqlite3.reserve").stat().st_size == 8 * 2**20
    rig.finish()
    log = rig.log()
    assert log.count("the disk is full (database or disk is full); released the 8 MiB reserve") == len(
        cycles()
    )
    assert log.count("there is room on the disk again") == len(cycles())
    assert "MQTT messages left unacknowledged for the broker to keep" in log
