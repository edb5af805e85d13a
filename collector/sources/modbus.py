"""Modbus input: polls devices over TCP and RTU with pymodbus's async clients (its only importer here).

Connections: a TCP device gets its own connection (pymodbus serialises requests per client, so a
silent unit behind a shared gateway connection would hold up the others; gateways accept several
connections). An RS-485 line is one shared connection, physically serial; a device that keeps failing
there is polled with exponential backoff so it costs the others at most one timeout per backoff period.

Each device polls on its own task at its interval, aligned to multiples of it (a 60 s device reads at
:00 of every minute), and hands the register blocks, or the error, to the collector. Reconnection uses
exponential backoff with full jitter. Errors wrap the device and address (`DeviceReadError`) and are
logged once when a fault starts, then counted quietly until it clears.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from collector.pipeline import DeviceRef
from collector.requests import ReadRequest, plan_requests
from jieshui.errors import DeviceReadError
from jieshui.inventory import ModbusRtu, ModbusTcp

log = logging.getLogger(__name__)
NS = 10**9

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

#: The function code of a read of each table (an answer carries the same one, or it + 0x80).
FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


@dataclass(frozen=True)
class PollResult:
    """One poll: the register blocks read, or why there are none."""

    device: DeviceRef
    slot_ns: int  # the aligned time the reading is stamped with
    blocks: dict[str, dict[int, int]] | None
    error: DeviceReadError | None = None
    reason: str = ""  # timeout | connection | modbus_exception | bad_answer
    cycle_s: float = 0.0  # time the poll took
    lateness_s: float = 0.0  # how long after its slot the poll started


class Backoff:
    """Exponential backoff with full jitter: 0..min(cap, base * 2**n) seconds."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 60.0, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)

    def next_delay(self) -> float:
        """The delay before the next attempt; counts a failure."""
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        """A success: start again from the base."""
        self.failures = 0


class ModbusLink:
    """One pymodbus client (a TCP connection or a serial line) with reconnection and backoff."""

    def __init__(self, conn: ModbusTcp | ModbusRtu, timeout_s: float, retries: int) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        if isinstance(conn, ModbusTcp):
            self.address = f"tcp://{conn.host}:{conn.port}"
            self.client: AsyncModbusTcpClient | AsyncModbusSerialClient = AsyncModbusTcpClient(
                conn.host, port=conn.port, timeout=timeout_s, retries=retries, reconnect_delay=0
            )
        else:
            self.address = f"rtu://{conn.serial_port}"
            self.client = AsyncModbusSerialClient(
                conn.serial_port,
                baudrate=conn.baudrate,
                parity=conn.parity,
                bytesize=conn.bytesize,
                stopbits=conn.stopbits,
                timeout=timeout_s,
                retries=retries,
                reconnect_delay=0,
            )
        self.backoff = Backoff()
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def ensure_connected(self) -> bool:
        """Connect if needed, unless the backoff says to wait; True when connected."""
        if self.client.connected:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            async with asyncio.timeout(self.timeout_s + 1):
                ok = await self.client.connect()
        except (OSError, TimeoutError, ModbusException):
            ok = False
        if ok and self.client.connected:
            self.backoff.reset()
            return True
        self._retry_at = time.monotonic() + self.backoff.next_delay()
        return False

    async def read(self, device: str, unit_id: int, requests: list[ReadRequest]) -> dict[str, dict[int, int]]:
        """Read every request for one unit; raise DeviceReadError naming the device and address."""
        async with self._lock:
            if not await self.ensure_connected():
                raise DeviceReadError(
                    device, f"{self.address} unit {unit_id}", "not connected (retrying with backoff)"
                )
            blocks: dict[str, dict[int, int]] = {}
            for req in requests:
                try:
                    async with asyncio.timeout(self.timeout_s * 2 + 1):
                        response = await self._call(req, unit_id)
                except (TimeoutError, ModbusException, OSError) as exc:
                    # A lost answer can leave the connection out of step: start afresh.
                    self.client.close()
                    # garbage, half a frame, another transaction or unit id: pymodbus drops the frame and
                    # waits, so all of them end here, as does silence
                    why = f"no valid answer within {self.timeout_s:g} s: {exc or type(exc).__name__}"
                    raise DeviceReadError(device, self._where(unit_id, req), why) from exc
                if response.isError():
                    code = int(getattr(response, "exception_code", 0))
                    why = f"exception code {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"
                    raise DeviceReadError(device, self._where(unit_id, req), why)
                bits = req.table in ("coil", "discrete")
                if response.function_code != FUNCTION_CODES[req.table]:
                    # pymodbus hands over the answer to another read (an input-register answer to a
                    # holding-register read): its values would be stored as the wrong quantities
                    self.client.close()
                    why = (
                        f"bad answer: function code {response.function_code}, not "
                        f"{FUNCTION_CODES[req.table]} (read {req.table})"
                    )
                    raise DeviceReadError(device, self._where(unit_id, req), why)
                values = response.bits[: req.count] if bits else response.registers
                # bits come padded to whole bytes; registers must be exactly the count asked for
                if len(values) < req.count or (not bits and len(values) != req.count):
                    self.client.close()
                    why = f"bad answer: {len(values)} values for the {req.count} asked"
                    raise DeviceReadError(device, self._where(unit_id, req), why)
                table = blocks.setdefault(req.table, {})
                for i, value in enumerate(values[: req.count]):
                    table[req.address + i] = int(value)
            return blocks

    def _where(self, unit_id: int, req: ReadRequest) -> str:
        # built only for an error: every poll of every device would pay for it otherwise
        return f"{self.address} unit {unit_id} {req.table} {req.address}+{req.count}"

    async def _call(self, req: ReadRequest, unit_id: int) -> ModbusPDU:
        c = self.client
        if req.table == "holding":
            return await c.read_holding_registers(req.address, count=req.count, device_id=unit_id)
        if req.table == "input":
            return await c.read_input_registers(req.address, count=req.count, device_id=unit_id)
        if req.table == "coil":
            return await c.read_coils(req.address, count=req.count, device_id=unit_id)
        return await c.read_discrete_inputs(req.address, count=req.count, device_id=unit_id)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def _reason(error: DeviceReadError) -> str:
    text = str(error)
    if "exception code" in text:
        return "modbus_exception"
    if "not connected" in text:
        return "connection"
    if "bad answer" in text:  # an answer came, but not the one asked for (was counted as a timeout)
        return "bad_answer"
    return "timeout"


@dataclass
class DevicePoller:
    """Polls one device on its aligned schedule and hands each result to `emit`."""

    device: DeviceRef
    link: ModbusLink
    unit_id: int
    interval_s: float
    emit: Callable[[PollResult], Awaitable[None]]
    shared_line: bool = False  # on a shared RS-485 line, a failing device backs off
    requests: list[ReadRequest] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        self.requests = plan_requests(self.device.profile)

    def next_slot_ns(self, now_ns: int, after_ns: int = 0) -> int:
        """The next aligned slot strictly after both now and `after_ns`."""
        step = int(self.interval_s * NS)
        slot = (max(now_ns, after_ns) // step + 1) * step
        if self.shared_line and self.failures:
            # skip 2**failures - 1 slots (capped at 10 minutes) so a dead unit rarely holds the line
            skip = min(2**self.failures - 1, max(1, int(600 / self.interval_s)))
            slot += skip * step
        return slot

    async def run(self, stop: asyncio.Event, first_after_ns: int = 0) -> None:
        """Poll until `stop` is set (checked at every slot) or the task is cancelled (the collector
        cancels its pollers on stop, so a long interval does not delay shutdown)."""
        slot = self.next_slot_ns(time.time_ns(), first_after_ns)
        while not stop.is_set():
            delay = (slot - time.time_ns()) / NS
            if delay > 0:
                # a plain sleep: waiting on `stop` with a timeout costs each of N pollers, all due at the
                # same aligned second, a cancellation and a removal from the event's waiter list, which
                # grows with N (bench/bench_modbus.py: p99 lateness about 25 % lower at N = 1000)
                await asyncio.sleep(delay)
                if stop.is_set():
                    return
            started = time.monotonic()
            lateness = max(0.0, (time.time_ns() - slot) / NS)
            try:
                blocks = await self.link.read(self.device.device, self.unit_id, self.requests)
            except DeviceReadError as exc:
                self.failures += 1
                await self.emit(
                    PollResult(
                        self.device, slot, None, exc, _reason(exc), time.monotonic() - started, lateness
                    )
                )
            else:
                self.failures = 0
                await self.emit(
                    PollResult(self.device, slot, blocks, None, "", time.monotonic() - started, lateness)
                )
            slot = self.next_slot_ns(time.time_ns(), slot)
