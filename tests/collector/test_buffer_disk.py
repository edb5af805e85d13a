"""The buffer on a full disk (a real tmpfs, as root) and across unclean stops: it refuses with
BufferDiskFull instead of crashing, its reserve lets the drainer delete, and it accepts again once
there is room."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import collector.buffer as buffer_module
from collector.buffer import Buffer, BufferDiskFull


def _lines(start: int, n: int) -> list[str]:
    return [f'water_meter,device=m volume_m3={i}.5,pad="{"x" * 200}" {i}' for i in range(start, start + n)]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    assert os.geteuid() == 0, "mounting a tmpfs needs root (CI runs as root)"
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_to_disk_full(buffer: Buffer) -> int:
    """Commit until the disk is full; return the lines stored."""
    with pytest.raises(BufferDiskFull, match="the disk is full") as raised:
        _commit_forever(buffer)
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    return buffer.depth


def _commit_forever(buffer: Buffer) -> None:
    for start in range(0, 10**6, 100):
        buffer.commit(_lines(start, 100), counts={"accepted_modbus": 100})


def test_full_disk_refuses_then_drains_and_recovers(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "RESERVE_RETRY_S", 0.0)
    buffer = Buffer(disk / "b.sqlite3", reserve_bytes=1 << 20)
    assert buffer.reserve_path.stat().st_size == 1 << 20
    stored = _fill_to_disk_full(buffer)
    assert stored > 0
    assert buffer.counters()["accepted_modbus"] == stored  # the refused batch counted nothing
    assert buffer.disk_full_since is not None
    assert not buffer.reserve_path.exists()  # released: room for the drainer
    # refusing while there is no room for the reserve and as much again
    with pytest.raises(BufferDiskFull, match="lines refused until there is room"):
        buffer.commit(_lines(10**7, 1))
    # the drainer can still delete what InfluxDB confirmed, down to an empty buffer
    first_half = buffer.peek(stored // 2)
    assert buffer.remove_through(first_half[-1][0]) == len(first_half)
    assert buffer.remove_through(10**9) == stored - len(first_half)
    # an empty buffer gives its pages back; then there is room, and it accepts by itself
    assert buffer.commit(_lines(10**7, 10)) == 10
    assert buffer.disk_full_since is None
    assert buffer.reserve_path.stat().st_size == 1 << 20
    buffer.close()


def test_a_full_disk_filled_by_someone_else(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "RESERVE_RETRY_S", 0.0)
    buffer = Buffer(disk / "b.sqlite3", reserve_bytes=1 << 20)
    for start in range(0, 2000, 50):  # a WAL of some size, as a running buffer has
        buffer.commit(_lines(start, 50))
        buffer.remove_through(10**9)
    buffer.commit(_lines(0, 50))
    filler = disk / "other.log"
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(b"x" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC  # noqa: PT017 - the loop's way out
                break
    assert buffer.remove_through(10**9) == 50  # the drainer goes on: the WAL it reuses is on disk
    with pytest.raises(BufferDiskFull):
        _commit_forever(buffer)
    assert buffer.disk_full_since is not None
    with pytest.raises(BufferDiskFull):
        buffer.commit(_lines(10**6, 1))  # still no room: the other file holds it
    filler.unlink()
    assert buffer.commit(_lines(10**6, 1)) == 1
    assert buffer.disk_full_since is None
    buffer.close()


def test_a_buffer_opened_on_a_full_disk_refuses_until_there_is_room(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer_module, "RESERVE_RETRY_S", 0.0)
    Buffer(disk / "b.sqlite3", reserve_bytes=1 << 20).close()
    (disk / "b.sqlite3.reserve").unlink()
    filler = disk / "other.log"
    filler.write_bytes(b"x" * (3 << 20))  # leaves less than the reserve
    buffer = Buffer(disk / "b.sqlite3", reserve_bytes=1 << 20)
    assert buffer.disk_full_since is not None
    with pytest.raises(BufferDiskFull):
        buffer.commit(_lines(0, 1))
    filler.unlink()
    assert buffer.commit(_lines(0, 1)) == 1
    buffer.close()


def test_runs_record_unclean_stops(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", reserve_bytes=0)
    assert buffer.begin_run() is None  # the first run
    buffer.end_run()
    assert buffer.begin_run() is None  # after a clean stop
    buffer.close()  # no end_run: as a SIGKILL leaves it
    buffer = Buffer(tmp_path / "b.sqlite3", reserve_bytes=0)
    started = buffer.begin_run()
    assert started is not None
    assert started > 0
    assert buffer.counters()["unclean_stops"] == 1
    buffer.end_run()
    assert buffer.begin_run() is None
    assert buffer.counters()["unclean_stops"] == 1
    buffer.close()
