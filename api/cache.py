"""A small time-bounded cache for figures that are expensive to compute and change slowly.

A community's status costs a dozen InfluxQL queries, and its readings change once per poll interval
(a minute for most devices): computing it for every request of every open dashboard would make
InfluxDB the API's bottleneck (docs/benchmarks.md). Entries live `ttl_s` seconds (monotonic clock);
one computation per key runs at a time, so a burst of requests on a cold entry costs one computation,
not one per request; `invalidate` drops an entry when the API itself changed what it shows (an alert
acknowledged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values by key, each kept `ttl_s` seconds; `ttl_s` 0 keeps nothing."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value of `key`, or `compute()`'s (stored for `ttl_s` seconds)."""
        if self.ttl_s <= 0:
            return compute()
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[0]:
            self.hits += 1
            return entry[1]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # another request may have computed it while this one waited
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry[0]:
                self.hits += 1
                return entry[1]
            self.misses += 1
            value = compute()
            self._entries[key] = (self._clock() + self.ttl_s, value)
            return value

    def peek(self, key: Hashable) -> V | None:
        """The value of `key` if it is cached and fresh, else None (nothing is computed)."""
        entry = self._entries.get(key)
        if entry is not None and self.ttl_s > 0 and self._clock() < entry[0]:
            self.hits += 1
            return entry[1]
        return None

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` for `ttl_s` seconds (nothing when the cache is off)."""
        if self.ttl_s > 0:
            self._entries[key] = (self._clock() + self.ttl_s, value)

    def invalidate(self, key: Hashable) -> None:
        """Forget `key`: the next `get` computes it again."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
