"""A TCP proxy the fault tests control: the network between the collector and a device, the broker or
InfluxDB, which can be cut, slowed down or made to corrupt what it carries.

Modes (set at any time, they apply to every connection, open or new):
- `pass`: bytes flow both ways.
- `hold`: a silent cut, as when a cable or a router goes: nothing flows and nothing is refused;
  connections stay open and what was sent waits (TCP would retransmit it once the link is back), new
  connections are accepted but go nowhere until the link returns. Clients notice only by timeouts.
- `reset`: a cut the hosts notice: every connection is closed and new ones are closed at once.
- `delay`: answers (server to client) arrive `delay_s` late, in order: a slow server.
- `garbage`: answers are replaced by random bytes of the same length: a device talking nonsense.
- `half`: only the first half of each answer arrives; the rest is lost: a frame cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["pass", "hold", "reset", "delay", "garbage", "half"]


class TcpProxy:
    """Listen on a free loopback port and forward to `upstream_host:upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.port = 0
        self.connections = 0  # accepted so far
        self.corrupted = 0  # answers replaced or cut short
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control (from the test's thread) -------------------------------------------------------
    def start(self) -> TcpProxy:
        """Start listening; `port` is then set."""
        self._thread.start()
        self._call(self._start())
        return self

    def set(self, mode: Mode, delay_s: float = 0.0) -> None:
        """Switch mode; `reset` closes every open connection at once."""
        self._call(self._set(mode, delay_s))

    def stop(self) -> None:
        """Close everything and stop the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the loop's side ------------------------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set(self, mode: Mode, delay_s: float) -> None:
        assert self._flowing is not None
        self.mode, self.delay_s = mode, delay_s
        if mode == "hold":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "reset":
            for writer in list(self._writers):
                _abort(writer)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _abort(writer)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "reset":
            _abort(client_w)
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(client_w)  # the server is down: the client sees its connection closed
            return
        self._writers |= {client_w, upstream_w}
        try:
            await asyncio.gather(
                self._pump(client_r, upstream_w, answers=False),
                self._pump(upstream_r, client_w, answers=True),
            )
        finally:
            for writer in (client_w, upstream_w):
                self._writers.discard(writer)
                _abort(writer)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await self._flowing.wait()
                chunk = await reader.read(65536)
                if not chunk:
                    break
                await self._flowing.wait()  # a cut while this chunk was on its way holds it too
                if answers:
                    if self.mode == "delay":
                        await asyncio.sleep(self.delay_s)
                    elif self.mode == "garbage":
                        chunk = self._rng.randbytes(len(chunk))
                        self.corrupted += 1
                    elif self.mode == "half":
                        chunk = chunk[: len(chunk) // 2]
                        self.corrupted += 1
                writer.write(chunk)
                await writer.drain()
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
