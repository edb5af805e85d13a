"""The durable buffer between the collector's inputs and InfluxDB: SQLite in WAL mode.

A batch of points enters in one transaction together with the device state that produced them
(totalizer values, message ids seen) and the collector's counters, so after a crash the buffer, the
state and the counts agree: no reading is counted twice or lost. MQTT messages are acknowledged to
the broker only after that transaction commits. The drainer reads the oldest lines, writes them, and
deletes them only after InfluxDB confirmed; a replay after a restart rewrites identical points
(same series, same time, same fields), which InfluxDB stores once.

The buffer is bounded (`max_lines`). When full, `commit` raises `BufferFull`: the MQTT input then
stops acknowledging (the broker keeps the messages: the persistent session is the overflow), and
the Modbus input records the refused poll as a dead letter and a metric; the totalizers still carry
the volume to the next accepted poll. Nothing is dropped silently.

The disk can fill up before the bound is reached (another program's logs, a bound set too high). In
WAL mode SQLite then cannot even delete: deleting appends to the WAL, and moving the WAL into the
database needs room too, so a full disk would stop the drainer and with it any way back. The buffer
therefore keeps a reserve file beside it (`reserve_bytes`, allocated up front). At the first "disk
full" it releases the reserve, which gives the drainer room to delete and checkpoint, and refuses new
lines (`BufferDiskFull`, a `BufferFull`) until there is room for the reserve and as much again: once
space is freed, by whoever filled the disk or by the drainer emptying the buffer (an empty buffer
gives its pages back), it takes its reserve again and accepts by itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from collector.pipeline import DeviceState
from jieshui.errors import JieshuiError

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_ns INTEGER NOT NULL,
    stopped_ns INTEGER
);
CREATE TABLE IF NOT EXISTS seen (
    device TEXT NOT NULL,
    n INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (device, n)
) WITHOUT ROWID;
"""


log = logging.getLogger(__name__)

#: The reserve released when the disk fills: room for the drainer to delete and checkpoint. SQLite
#: checkpoints its WAL at 1,000 pages (4 MiB), so twice that covers a checkpoint's copy.
RESERVE_BYTES = 8 * 1024 * 1024
#: How often a refusing buffer tries to take its reserve back (an allocation, not a write on most
#: file systems).
RESERVE_RETRY_S = 2.0


class BufferFull(JieshuiError):
    """The buffer holds `max_lines` lines; the batch was not stored."""


class BufferDiskFull(BufferFull):
    """The buffer's disk is full; the batch was not stored."""


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Buffer:
    """Pending line protocol, device state and counters in one SQLite file."""

    def __init__(
        self,
        path: Path,
        max_lines: int = 5_000_000,
        synchronous: str = "FULL",
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_lines = max_lines
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self.disk_full_since: float | None = None  # time.monotonic() of the "disk full" in force
        self._reserve_tried = 0.0
        if not self._take_reserve():
            # started on a full disk: refuse until there is room (the drainer can still delete)
            self.disk_full_since = time.monotonic()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a crash of this process, because
        # MQTT messages are acknowledged right after the commit.
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
        # Debian builds SQLite with secure_delete on: overwriting every deleted line with zeros doubled
        # the cost of removing a written batch (bench/bench_ingest.py); the lines are not secrets
        self._db.execute("PRAGMA secure_delete=OFF")
        self._db.executescript(SCHEMA)
        if reserve_bytes:
            # the WAL is checkpointed before it outgrows half the reserve (SQLite's default is 1,000
            # pages), so the reserve released on a full disk always covers a checkpoint and a batch
            page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._db.execute(f"PRAGMA wal_autocheckpoint={max(16, min(1000, reserve_bytes // 2 // page))}")
        self._depth = int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])
        self._migrate_seen()
        # per device, the number of the newest id stored in `seen`: a commit adds only what is newer
        totals = self._db.execute("SELECT device, max(n) FROM seen GROUP BY device")
        self._stored_total: dict[str, int] = {device: int(n) for device, n in totals}

    def _migrate_seen(self) -> None:
        """A buffer written before the ids had rows of their own kept them in the state's JSON: move
        them (once; the same transaction rewrites the state without them)."""
        rows = self._db.execute("SELECT device, state FROM device_state WHERE state LIKE '%\"seen\": [%'")
        legacy = [(device, DeviceState.from_json(text)) for device, text in rows]
        if not legacy:
            return
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for device, state in legacy:
                first = state.seen_total - len(state.seen) + 1
                cur.executemany(
                    "INSERT OR REPLACE INTO seen (device, n, id) VALUES (?, ?, ?)",
                    ((device, first + i, message_id) for i, message_id in enumerate(state.seen)),
                )
                cur.execute("UPDATE device_state SET state = ? WHERE device = ?", (state.to_json(), device))
            cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- input side -----------------------------------------------------------------------------
    def commit(
        self,
        lines: Iterable[str],
        states: Mapping[str, DeviceState] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> int:
        """Store lines, device states and counter increments atomically; return the lines stored."""
        batch = list(lines)
        if self._depth + len(batch) > self.max_lines:
            raise BufferFull(
                f"buffer {self.path} holds {self._depth} lines; {len(batch)} more exceed its bound of "
                f"{self.max_lines}"
            )
        if self.disk_full_since is not None and not self._recovered():
            raise BufferDiskFull(
                f"buffer {self.path}: the disk is full (for {time.monotonic() - self.disk_full_since:.0f} s);"
                f" {len(batch)} lines refused until there is room for its {self._reserve_mib} reserve again"
            )
        try:
            self._commit(batch, states, counts)
        except (sqlite3.OperationalError, OSError) as exc:
            if not _disk_full(exc):
                raise
            self._on_disk_full(exc)
            raise BufferDiskFull(
                f"buffer {self.path}: the disk is full ({exc}); {len(batch)} lines refused, "
                f"{self._depth} still pending for InfluxDB"
            ) from exc
        return len(batch)

    def replace_refused(
        self, ids: Sequence[int], dead_letters: Sequence[str], counts: Mapping[str, int]
    ) -> None:
        """In one transaction: delete a written batch's lines (`ids`) and store the dead letters of the
        ones InfluxDB refused for good. Never refused for the bound: each dead letter takes the place of
        a line of the batch. Raise BufferDiskFull on a full disk (nothing changes; tried again later)."""
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany("DELETE FROM pending WHERE id = ?", ((i,) for i in ids))
                removed = cur.rowcount
                now = time.time_ns()
                cur.executemany(
                    "INSERT INTO pending (line, created_ns) VALUES (?, ?)", ((x, now) for x in dead_letters)
                )
                for name, increment in counts.items():
                    cur.execute(
                        "INSERT INTO counter (name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (name, increment),
                    )
                cur.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            self._on_disk_full(exc)
            raise BufferDiskFull(
                f"buffer {self.path}: the disk is full; refused lines kept for later"
            ) from exc
        self._depth = max(0, self._depth - max(removed, 0) + len(dead_letters))

    def _commit(
        self, batch: list[str], states: Mapping[str, DeviceState] | None, counts: Mapping[str, int] | None
    ) -> None:
        now = time.time_ns()
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "INSERT INTO pending (line, created_ns) VALUES (?, ?)", ((line, now) for line in batch)
            )
            for device, state in (states or {}).items():
                cur.execute(
                    "INSERT INTO device_state (device, state) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET state = excluded.state",
                    (device, state.to_json()),
                )
                self._store_seen(cur, device, state)
            for name, increment in (counts or {}).items():
                cur.execute(
                    "INSERT INTO counter (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (name, increment),
                )
            cur.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk): a ROLLBACK then would
            # raise "no transaction is active" over the error that matters
            if self._db.in_transaction:
                cur.execute("ROLLBACK")
            raise
        self._depth += len(batch)
        for device, state in (states or {}).items():
            self._stored_total[device] = state.seen_total

    # -- the reserve ----------------------------------------------------------------------------
    @property
    def _reserve_mib(self) -> str:
        return f"{self.reserve_bytes / 2**20:g} MiB"

    def _take_reserve(self) -> bool:
        """Allocate the reserve file (True when it is in place)."""
        if self.reserve_bytes == 0:
            return True
        with contextlib.suppress(FileNotFoundError):
            if self.reserve_path.stat().st_size >= self.reserve_bytes:
                return True
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self.reserve_bytes)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    # a file system without fallocate: write the blocks
                    block = bytes(1 << 20)
                    for offset in range(0, self.reserve_bytes, len(block)):
                        os.pwrite(fd, block[: self.reserve_bytes - offset], offset)
            finally:
                os.close(fd)
        except OSError as exc:
            if not _disk_full(exc):
                raise
            with contextlib.suppress(FileNotFoundError):
                self.reserve_path.unlink()  # half a reserve is only in the way
            return False
        return True

    def _release_reserve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.reserve_path.unlink()

    def _on_disk_full(self, exc: BaseException) -> None:
        if self.disk_full_since is None:
            self.disk_full_since = time.monotonic()
            self._reserve_tried = self.disk_full_since
            log.error(
                "buffer %s: the disk is full (%s); released the %s reserve so the %d pending lines can "
                "still be written and deleted; new readings are refused until there is room again",
                self.path, exc, self._reserve_mib, self._depth,
            )  # fmt: skip
        self._release_reserve()

    def _recovered(self) -> bool:
        """While refusing: whether the reserve could be taken back (tried every RESERVE_RETRY_S)."""
        now = time.monotonic()
        if now - self._reserve_tried < RESERVE_RETRY_S:
            return False
        self._reserve_tried = now
        if self._depth == 0:
            # an empty buffer gives its space back to the file system: WAL and free pages
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # room for the reserve and as much again for readings: else the next commit fills the disk
        # again at once (the reserve released is itself free space)
        try:
            disk = os.statvfs(self.path.parent)
            if disk.f_bavail * disk.f_frsize < 2 * self.reserve_bytes or not self._take_reserve():
                return False
        except OSError as exc:  # the disk went read-only or away: still refusing, and saying why
            log.error("buffer %s: cannot take the reserve back: %s", self.path, exc)
            return False
        log.warning(
            "buffer %s: there is room on the disk again after %.0f s; accepting readings",
            self.path, now - (self.disk_full_since or now),
        )  # fmt: skip
        self.disk_full_since = None
        return True

    def _store_seen(self, cur: sqlite3.Cursor, device: str, state: DeviceState) -> None:
        """Add the ids remembered since the last commit, drop those that left the window."""
        stored = self._stored_total.get(device, 0)
        if state.seen_total == stored:
            return
        first = state.seen_total - len(state.seen) + 1  # the number of the oldest id in the window
        if state.seen_total < stored:  # not a successor of what is stored: store the window afresh
            cur.execute("DELETE FROM seen WHERE device = ?", (device,))
            stored = first - 1
        new = state.seen[max(0, stored + 1 - first) :]
        cur.executemany(
            "INSERT OR REPLACE INTO seen (device, n, id) VALUES (?, ?, ?)",
            ((device, state.seen_total - len(new) + 1 + i, message_id) for i, message_id in enumerate(new)),
        )
        cur.execute("DELETE FROM seen WHERE device = ? AND n < ?", (device, first))

    def states(self) -> dict[str, DeviceState]:
        """Every device's state as last committed."""
        seen: dict[str, list[str]] = {}
        for device, message_id in self._db.execute("SELECT device, id FROM seen ORDER BY device, n"):
            seen.setdefault(device, []).append(message_id)
        rows = self._db.execute("SELECT device, state FROM device_state").fetchall()
        return {device: DeviceState.from_json(state, seen.get(device, [])) for device, state in rows}

    def counters(self) -> dict[str, int]:
        """The persisted counters (accepted readings, duplicates, dead letters by reason...)."""
        return {name: int(value) for name, value in self._db.execute("SELECT name, value FROM counter")}

    # -- runs -----------------------------------------------------------------------------------
    def begin_run(self) -> int | None:
        """Record a collector's start; return when the previous run started if it never recorded a
        clean stop (a crash, SIGKILL or power loss), else None. Such a stop counts as `unclean_stops`."""
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            row = cur.execute("SELECT started_ns, stopped_ns FROM run ORDER BY id DESC LIMIT 1").fetchone()
            unclean = row is not None and row[1] is None
            if unclean:
                cur.execute(
                    "INSERT INTO counter (name, value) VALUES ('unclean_stops', 1) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + 1"
                )
            cur.execute("INSERT INTO run (started_ns) VALUES (?)", (time.time_ns(),))
            cur.execute("DELETE FROM run WHERE id < (SELECT max(id) FROM run) - 100")  # keep the last 100
            cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                cur.execute("ROLLBACK")
            raise
        return int(row[0]) if unclean else None

    def end_run(self) -> None:
        """Record a clean stop of the current run."""
        self._db.execute(
            "UPDATE run SET stopped_ns = ? WHERE id = (SELECT max(id) FROM run)", (time.time_ns(),)
        )

    # -- drain side -----------------------------------------------------------------------------
    def peek(self, limit: int, after_id: int = 0) -> list[tuple[int, str]]:
        """The oldest `limit` pending lines with their ids (those after `after_id`)."""
        return list(
            self._db.execute(
                "SELECT id, line FROM pending WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            )
        )

    def remove_through(self, last_id: int) -> int:
        """Delete pending lines up to and including `last_id` (after InfluxDB confirmed them)."""
        if self.disk_full_since is not None:
            # one large DELETE would fill the WAL, and the disk with it, before it could commit
            removed = self._remove_in_steps(last_id)
            self._depth = max(0, self._depth - removed)
            return removed
        try:
            removed = int(self._db.execute("DELETE FROM pending WHERE id <= ?", (last_id,)).rowcount)
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            self._on_disk_full(exc)
            removed = self._remove_in_steps(last_id)
        self._depth = max(0, self._depth - removed)
        return removed

    def _remove_in_steps(self, last_id: int) -> int:
        """On a full disk: delete in small transactions with a checkpoint after each, so the WAL never
        needs more than the reserve released. If even that fails, raise BufferDiskFull: the lines stay
        and are written again later (a replay is stored once)."""
        removed = 0
        while True:
            try:
                cur = self._db.execute(
                    "DELETE FROM pending WHERE id IN "
                    "(SELECT id FROM pending WHERE id <= ? ORDER BY id LIMIT 256)",
                    (last_id,),
                )
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                self._depth = max(0, self._depth - removed)
                raise BufferDiskFull(
                    f"buffer {self.path}: the disk is full; cannot delete lines InfluxDB confirmed"
                ) from exc
            if cur.rowcount <= 0:
                return removed
            removed += cur.rowcount

    @property
    def depth(self) -> int:
        """Lines waiting for InfluxDB."""
        return self._depth

    def oldest_age_s(self) -> float:
        """Age of the oldest pending line, in seconds (0 when empty)."""
        # the oldest line is the first by id: an index lookup, where min(created_ns) scanned the
        # table (0.6 s with a million lines pending, stalling the collector's loop at every health tick)
        row = self._db.execute("SELECT created_ns FROM pending ORDER BY id LIMIT 1").fetchone()
        return 0.0 if row is None else (time.time_ns() - int(row[0])) / 1e9
