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
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
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
CREATE TABLE IF NOT EXISTS seen (
    device TEXT NOT NULL,
    n INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (device, n)
) WITHOUT ROWID;
"""


class BufferFull(JieshuiError):
    """The buffer holds `max_lines` lines; the batch was not stored."""


class Buffer:
    """Pending line protocol, device state and counters in one SQLite file."""

    def __init__(self, path: Path, max_lines: int = 5_000_000, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_lines = max_lines
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a crash of this process, because
        # MQTT messages are acknowledged right after the commit.
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
        # Debian builds SQLite with secure_delete on: overwriting every deleted line with zeros doubled
        # the cost of removing a written batch (bench/bench_ingest.py); the lines are not secrets
        self._db.execute("PRAGMA secure_delete=OFF")
        self._db.executescript(SCHEMA)
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
            cur.execute("ROLLBACK")
            raise
        self._depth += len(batch)
        for device, state in (states or {}).items():
            self._stored_total[device] = state.seen_total
        return len(batch)

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
        cur = self._db.execute("DELETE FROM pending WHERE id <= ?", (last_id,))
        self._depth = max(0, self._depth - cur.rowcount)
        return int(cur.rowcount)

    def remove(self, ids: Iterable[int]) -> None:
        """Delete specific pending lines (a batch split around a refused line)."""
        ids = list(ids)
        cur = self._db.executemany("DELETE FROM pending WHERE id = ?", ((i,) for i in ids))
        self._depth = max(0, self._depth - max(cur.rowcount, 0))

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
