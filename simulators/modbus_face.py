"""The simulators' Modbus face: each endpoint of the inventory served by a pymodbus server.

Devices that share an endpoint (a TCP gateway's host:port, or an RS-485 line) are one server with a
unit id per device, as in the field. Each device is a pymodbus SimDevice whose blocks cover its
profile's register map (addresses outside it answer "illegal data address"); on every read, the
device's action fills the registers from the live world at the current simulated time, encoded by the
profile, and applies its transport faults: silence (dropout), delay (slow) or an exception code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from devices.profile import Profile, find_profile
from devices.registers import encode_values
from jieshui.faults import Dropout, ModbusException, Slow
from jieshui.inventory import Device, ModbusRtu, ModbusTcp, Site
from simulators.live import LiveWorld
from simulators.modbus_server import ModbusServerThread, SerialLine
from simulators.model import NS

#: Function code -> register table; the simulated meters are read-only (writes are refused).
READ_TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
#: How long a silent device keeps a request unanswered (longer than any sane client timeout).
SILENCE_S = 30.0


def _runs(addresses: Sequence[int], max_gap: int = 0) -> list[tuple[int, int]]:
    """(start, count) runs of sorted addresses, bridging gaps of up to `max_gap` unused addresses
    (a device whose profile lets a request span its gaps serves them, as zeros)."""
    runs: list[tuple[int, int]] = []
    for a in sorted(set(addresses)):
        if runs and a - (runs[-1][0] + runs[-1][1]) <= max_gap:
            runs[-1] = (runs[-1][0], a - runs[-1][0] + 1)
        else:
            runs.append((a, 1))
    return runs


def simdata_for(profile: Profile) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """pymodbus blocks (coils, discrete inputs, holding, input registers) covering the profile's map."""
    assert profile.modbus is not None  # noqa: S101 (callers pass Modbus profiles only)
    used: dict[str, list[int]] = defaultdict(list)
    for reg in profile.modbus.registers:
        used[reg.table].extend(range(reg.address, reg.address + reg.count))
    blocks: list[list[SimData]] = []
    for table in ("coil", "discrete"):
        words = sorted({a // 16 for a in used.get(table, [])}) or [4095]  # an unused, unreachable word
        blocks.append([SimData(w, values=[False] * 16, datatype=DataType.BITS) for w in words])
    for table in ("holding", "input"):
        runs = _runs(used.get(table, []), profile.modbus.max_gap) or [(65535, 1)]
        blocks.append([SimData(a, count=n, values=0, datatype=DataType.REGISTERS) for a, n in runs])
    return blocks[0], blocks[1], blocks[2], blocks[3]


@dataclass
class DeviceFace:
    """One simulated device behind a Modbus endpoint."""

    community: str
    device: Device
    profile: Profile
    world: LiveWorld
    rng: random.Random
    reads: int = 0

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.world.clock.now_ns() / NS, tz=dt.UTC)

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Fill the requested block from the live world, or misbehave as the device's faults say."""
        table = READ_TABLES.get(function_code)
        if table is None or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = self._now()
        for fault in self.device.faults:
            if not fault.active(now):
                continue
            if isinstance(fault, Dropout):
                await asyncio.sleep(SILENCE_S)
                return ExcCodes.DEVICE_BUSY
            if isinstance(fault, Slow):
                await asyncio.sleep(fault.delay_s)
            elif isinstance(fault, ModbusException) and self.rng.random() < fault.probability:
                return ExcCodes(fault.code)
        image = encode_values(self.profile, self.world.reading(self.community, self.device.id))[table]
        if table in ("coil", "discrete"):
            words = {a // 16 for a in image}
            for w in words:
                bits = [bool(image.get(w * 16 + b, 0)) for b in range(16)]
                registers[w - start_address] = SimUtils.bitsToRegisters(bits)[0]
        else:
            for a, word in image.items():
                registers[a - start_address] = word
        self.reads += 1
        return None

    def simdevice(self, unit_id: int) -> SimDevice:
        """The pymodbus device for this face."""
        return SimDevice(id=unit_id, simdata=simdata_for(self.profile), action=self.action)


@dataclass(frozen=True)
class Endpoint:
    """Where a group of devices is served."""

    tcp: tuple[str, int] | None = None
    serial: str | None = None


def endpoints(site: Site) -> dict[Endpoint, list[tuple[str, Device]]]:
    """The inventory's Modbus devices grouped by endpoint."""
    groups: dict[Endpoint, list[tuple[str, Device]]] = defaultdict(list)
    for _, community in site.communities():
        for _, device in community.devices():
            conn = device.connection
            if isinstance(conn, ModbusTcp):
                groups[Endpoint(tcp=(conn.host, conn.port))].append((community.id, device))
            elif isinstance(conn, ModbusRtu):
                groups[Endpoint(serial=conn.serial_port)].append((community.id, device))
    return groups


def start_modbus_faces(
    site: Site, world: LiveWorld, seed: int, serial_ports: dict[str, str] | None = None
) -> tuple[list[ModbusServerThread], list[DeviceFace]]:
    """Serve every Modbus device of the site. `serial_ports` maps an inventory serial port (the
    collector's side) to the port the simulator serves on (the other end of a socat pair)."""
    servers: list[ModbusServerThread] = []
    faces: list[DeviceFace] = []
    for endpoint, members in endpoints(site).items():
        devices = []
        for community_id, device in members:
            profile = find_profile(device.profile)
            face = DeviceFace(community_id, device, profile, world, random.Random(f"{seed}/{device.id}"))  # noqa: S311
            faces.append(face)
            devices.append(face.simdevice(device.connection.unit_id))  # type: ignore[union-attr]
        if endpoint.tcp is not None:
            server = ModbusServerThread(devices, host=endpoint.tcp[0], port=endpoint.tcp[1])
        else:
            assert endpoint.serial is not None  # noqa: S101
            conn = members[0][1].connection
            assert isinstance(conn, ModbusRtu)  # noqa: S101
            port = (serial_ports or {}).get(endpoint.serial, endpoint.serial)
            line = SerialLine(port, conn.baudrate, conn.parity, conn.bytesize, conn.stopbits)
            server = ModbusServerThread(devices, serial=line)
        servers.append(server.start())
    return servers, faces
