"""The limit on failed authentications (docs/api.md, "Failed authentications").

A key's secret is 32 random bytes: nobody guesses it. What a limit stops is everything around guessing:
scanning for keys and tokens, enumerating key ids, and the load of a flood of lookups. Failures are
counted per client address and per presented key id in a sliding window; an address with `limit`
failures in the last `window_s` seconds is refused (429) on every route but /healthz until its oldest
counted failure leaves the window, a valid key included, so a block is not a way to test guesses.

Only the caller's own failures count against its address, so nobody is locked out by another address's
failures. A key id, though, is public, and anybody may send it with wrong secrets: when a key id has
`limit` failures in the window (from any addresses), wrong secrets for it are answered 429, and the
right one still passes, so the key's holder is never locked out by someone else.

The counts live in this process: with several API workers each counts its own (an address gets up to
`limit` failures per window per worker).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class SlidingWindow:
    """At most `limit` events per `window_s` seconds for each key (an address, a key id...).

    Keeps the times of each key's last `limit` events and nothing else; `limit` 0 counts nothing. At
    most `max_keys` keys are kept: past that, keys whose events have all left the window are dropped,
    then the keys that saw no event the longest.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: Hashable) -> float | None:
        """Seconds until `key` is under its limit again, or None if it is under it now."""
        if self.limit <= 0:
            return None
        with self._lock:
            events = self._events.get(key)
            if events is None or len(events) < self.limit:
                return None
            wait = events[0] + self.window_s - self._clock()
        return wait if wait > 0 else None

    def add(self, key: Hashable) -> int:
        """Count an event of `key` now; the number of its events in the window, this one included."""
        if self.limit <= 0:
            return 0
        now = self._clock()
        with self._lock:
            events = self._events.pop(key, None)  # re-inserted last: the dict's order is by last event
            if events is None:
                events = deque(maxlen=self.limit)
            while events and events[0] <= now - self.window_s:
                events.popleft()
            events.append(now)
            self._events[key] = events
            if len(self._events) > self._max_keys:
                self._sweep(now)
            return len(events)

    def __len__(self) -> int:
        """The keys kept."""
        return len(self._events)

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._events.items() if e[-1] <= now - self.window_s]:
            del self._events[key]
        while len(self._events) > self._max_keys:
            del self._events[next(iter(self._events))]


def retry_after_header(seconds: float) -> int:
    """`Retry-After` in whole seconds, at least 1 (a client retrying sooner is still refused)."""
    return max(1, math.ceil(seconds))


class AuthFailures:
    """Failed authentications per client address and per presented key id (see the module)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._window = SlidingWindow(limit, window_s, clock)

    def blocked(self, address: str) -> int | None:
        """`Retry-After` for an address over its limit, else None."""
        wait = self._window.retry_after(("address", address))
        return None if wait is None else retry_after_header(wait)

    def failed(self, address: str, key_id: str | None) -> int | None:
        """Count a failure of `address` (and of `key_id`, the public part of a presented key). Returns
        `Retry-After` when the key id was over its limit already: the failure is answered 429."""
        if self.limit <= 0:
            return None
        over = None
        if key_id is not None:
            wait = self._window.retry_after(("key", key_id))
            over = None if wait is None else retry_after_header(wait)
            if self._window.add(("key", key_id)) == self.limit and over is None:
                log.warning(
                    "authentication: %d failures for key id %r within %g s; wrong secrets for it are "
                    "refused with 429 for now",
                    self.limit,
                    key_id,
                    self.window_s,
                )
        if self._window.add(("address", address)) == self.limit:
            log.warning(
                "authentication: %d failures from %s within %g s; the address is refused for up to %g s",
                self.limit,
                address,
                self.window_s,
                self.window_s,
            )
        return over
