"""A Modbus server (TCP, or RTU on a serial line) on its own event loop in a background thread.

This is the simulators' Modbus face and the test harness's way to stand up a real pymodbus server on a
free port. It uses pymodbus 3.16's SimDevice/SimData (the ModbusSequentialDataBlock datastore is
deprecated there). Register values are set from any thread through `set_registers`, which runs the
update on the server's own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from jieshui.errors import ServiceError
from jieshui.services import free_port

T = TypeVar("T")

#: Modbus function codes used to write through the server's context.
WRITE_HOLDING_REGISTERS = 16


@dataclass(frozen=True)
class SerialLine:
    """The serial side of an RTU server."""

    port: str
    baudrate: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1


def register_block(unit_id: int, registers: Sequence[int], start: int = 0) -> SimDevice:
    """A device whose holding/input registers `start..` hold `registers` (16-bit values)."""
    return SimDevice(
        id=unit_id,
        simdata=[SimData(address=start, values=list(registers), datatype=DataType.REGISTERS)],
    )


class ModbusServerThread:
    """Serve `devices` over Modbus TCP on (host, port) or RTU on a serial line, until `stop`."""

    def __init__(
        self,
        devices: Sequence[SimDevice],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        serial: SerialLine | None = None,
    ) -> None:
        self.devices = list(devices)
        self.host = host
        self.port = port or 0
        self.serial = serial
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modbus-server", daemon=True)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    def start(self) -> ModbusServerThread:
        """Start serving; return self. Raises ServiceError if the address cannot be bound."""
        self._thread.start()
        if self.serial is None and not self.port:
            self.port = free_port(self.host)
        try:
            self._run(self._start())
        except (OSError, RuntimeError) as exc:
            self.stop()
            where = self.serial.port if self.serial else f"{self.host}:{self.port}"
            raise ServiceError(f"Modbus server could not listen on {where}: {exc}") from exc
        return self

    async def _start(self) -> None:
        if self.serial is None:
            self._server = ModbusTcpServer(self.devices, address=(self.host, self.port))
        else:
            s = self.serial
            self._server = ModbusSerialServer(
                self.devices,
                port=s.port,
                baudrate=s.baudrate,
                parity=s.parity,
                bytesize=s.bytesize,
                stopbits=s.stopbits,
            )
        await self._server.serve_forever(background=True)

    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def set_registers(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """Change registers of a running server (as the device itself would)."""
        if self._server is None:
            raise ServiceError("Modbus server is not running")
        server = self._server

        async def _set() -> None:
            await server.context.async_setValues(unit_id, WRITE_HOLDING_REGISTERS, address, list(values))

        self._run(_set())

    def stop(self) -> None:
        """Stop serving and end the thread; safe to call twice."""
        if self._thread.is_alive():
            if self._server is not None:
                self._run(self._server.shutdown())  # type: ignore[no-untyped-call]
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> ModbusServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
