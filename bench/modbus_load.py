"""Helpers of bench/bench_modbus.py: a fleet of simulated Modbus TCP devices served from several
processes, the inventory listing them, and the raw pymodbus baseline client.

Each simulator process (`python -m bench.modbus_load serve`, spec on stdin) runs pymodbus 3.16
`ModbusTcpServer`s on one asyncio loop, one per port, each with many unit ids. A device is a `SimDevice`
whose blocks are built exactly as `simulators.modbus_face.simdata_for` builds them from the profile's
register map, pre-filled with a plausible register image (`devices.registers.encode_values`). The
values are static (no per-read `action`): the benchmark measures the transport and the collector, not
the physics, and a static image keeps the simulators' share of the 2 cores as small as possible. The
process exits when its stdin closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
#: The mix of device profiles in the fleet (water meters dominate, as in the field), cycled.
PROFILE_MIX = ("ul-wm100", "ul-wm100", "hy-rwc200", "ul-wm100", "hs-rp55")
#: Unit ids per TCP port (a gateway serves at most 247).
UNITS_PER_PORT = 125
#: Devices per community in the generated inventory (districts hold at most 8 applying communities).
DEVICES_PER_COMMUNITY = 25
COMMUNITIES_PER_DISTRICT = 8


# --- the fleet ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimDeviceSpec:
    """One simulated device: where it is served and what it is."""

    index: int
    port: int
    unit_id: int
    profile: str

    @property
    def device_id(self) -> str:
        return f"{self.profile}-{self.index:04d}"


@dataclass
class Fleet:
    """N devices spread over `processes` simulator processes, each serving one or more ports."""

    devices: list[SimDeviceSpec]
    processes: list[list[int]]  # ports of each process
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def plan(cls, n: int, processes: int) -> Fleet:
        """Deal n devices (profiles cycled through PROFILE_MIX) over the processes, each process's
        share over as few ports as hold it at UNITS_PER_PORT unit ids per port."""
        from jieshui.services import free_port

        processes = max(1, min(processes, n))
        devices: list[SimDeviceSpec] = []
        layout: list[list[int]] = []
        for p in range(processes):
            share = n // processes + (1 if p < n % processes else 0)
            ports = [free_port() for _ in range(math.ceil(share / UNITS_PER_PORT))]
            for k in range(share):
                port = ports[k % len(ports)]
                index = len(devices)
                profile = PROFILE_MIX[index % len(PROFILE_MIX)]
                devices.append(SimDeviceSpec(index, port, k // len(ports) + 1, profile))
            layout.append(ports)
        return cls(devices, layout)

    def start(self, timeout_s: float = 60.0) -> None:
        """Start every simulator process and wait until each listens."""
        for ports in self.processes:
            spec = [
                {"port": port, "devices": [[d.unit_id, d.profile] for d in self.devices if d.port == port]}
                for port in ports
            ]
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.modbus_load", "serve"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(spec).encode() + b"\n")
            proc.stdin.flush()
            self.procs.append(proc)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            if line != "ready" or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Modbus simulator process did not start: {line!r}")

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the simulator processes."""
        return sum(process_cpu_s(p.pid) for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        """Close their stdin (they exit), then make sure."""
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc; 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plausible_values(profile_name: str, index: int) -> dict[str, float | bool]:
    """Engineering values every quantity of the profile accepts (inside min/max), per device."""
    from devices.profile import find_profile

    profile = find_profile(profile_name)
    values: dict[str, float | bool] = {}
    for q in profile.quantities:
        if q.type == "bool":
            values[q.name] = index % 2 == 0
        elif q.type == "int":
            values[q.name] = 0
        elif q.totalizer:
            values[q.name] = 1000.0 + index
        else:
            lo = q.min if q.min is not None else 0.0
            hi = q.max if q.max is not None else lo + 10.0
            values[q.name] = round(lo + (hi - lo) * 0.3, 2)
    return values


def sim_device(unit_id: int, profile_name: str, index: int) -> Any:
    """The pymodbus SimDevice of one device: `simdata_for` blocks holding a plausible image."""
    from pymodbus.simulator import DataType, SimData, SimDevice

    from devices.profile import find_profile
    from devices.registers import encode_values
    from simulators.modbus_face import simdata_for

    profile = find_profile(profile_name)
    image = encode_values(profile, plausible_values(profile_name, index))
    coils, discrete, holding, inputs = simdata_for(profile)

    def bits(blocks: list[Any], table: str) -> list[Any]:
        out = []
        for b in blocks:
            w = b.address
            out.append(
                SimData(
                    w,
                    values=[bool(image[table].get(w * 16 + i, 0)) for i in range(16)],
                    datatype=DataType.BITS,
                )
            )
        return out

    def words(blocks: list[Any], table: str) -> list[Any]:
        return [
            SimData(b.address, values=[image[table].get(a, 0) for a in range(b.address, b.address + b.count)],
                    datatype=DataType.REGISTERS)
            for b in blocks
        ]  # fmt: skip

    simdata = (
        bits(coils, "coil"),
        bits(discrete, "discrete"),
        words(holding, "holding"),
        words(inputs, "input"),
    )
    return SimDevice(id=unit_id, simdata=simdata)


async def _serve(spec: list[dict[str, Any]]) -> None:
    from pymodbus.server import ModbusTcpServer

    servers = []
    index = 0
    for entry in spec:
        devices = []
        for unit_id, profile in entry["devices"]:
            devices.append(sim_device(unit_id, profile, index))
            index += 1
        server = ModbusTcpServer(devices, address=("127.0.0.1", entry["port"]))
        await server.serve_forever(background=True)
        servers.append(server)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)  # until the parent closes our stdin
    for server in servers:
        await server.shutdown()  # type: ignore[no-untyped-call]


def serve_main() -> None:
    """Entry point of a simulator process: read the spec line, serve until stdin closes."""
    spec = json.loads(sys.stdin.buffer.readline())
    asyncio.run(_serve(spec))


# --- the inventory ------------------------------------------------------------------------------


def fleet_site(devices: Sequence[SimDeviceSpec], poll_interval_s: float = 1.0) -> Any:
    """A valid inventory (jieshui.inventory models) listing every device as a Modbus TCP device:
    communities of 25 devices (water meters at the master meter, controllers in a rainwater facility,
    pumps at a river-water facility), 8 communities per district."""
    from jieshui.inventory import Site, check_rules

    facility_of = {
        "ul-wm100": ("meters", "master_meter"),
        "hy-rwc200": ("rainwater", "rainwater_harvesting"),
        "hs-rp55": ("river", "river_water"),
    }
    districts: list[dict[str, Any]] = []
    for c0 in range(0, len(devices), DEVICES_PER_COMMUNITY):
        members = devices[c0 : c0 + DEVICES_PER_COMMUNITY]
        ci = c0 // DEVICES_PER_COMMUNITY
        if ci % COMMUNITIES_PER_DISTRICT == 0:
            districts.append(
                {"id": f"d{len(districts) + 1}", "name": f"District {len(districts) + 1}", "communities": []}
            )
        facilities: dict[str, dict[str, Any]] = {}
        for d in members:
            fid, kind = facility_of[d.profile]
            fac = facilities.setdefault(fid, {"id": fid, "kind": kind, "name": fid, "devices": []})
            if kind == "rainwater_harvesting":
                fac.update(catchments=["roofs"], tank_capacity_m3=70, rated_flow_m3h=10)
            elif kind == "river_water":
                fac.update(rated_flow_m3h=12)
            conn = {"protocol": "modbus_tcp", "host": "127.0.0.1", "port": d.port, "unit_id": d.unit_id}
            fac["devices"].append(
                {
                    "id": d.device_id,
                    "profile": d.profile,
                    "poll_interval_s": poll_interval_s,
                    "connection": conn,
                }
            )
        districts[-1]["communities"].append({
            "id": f"c{ci + 1}", "name": f"Community {ci + 1}", "street_town": "town",
            "residents_committee": "rc", "contact": "contact", "phone": "021-62681234", "postcode": "200335",
            "address": "address",
            "households": 1000, "population": 2500, "application_year": 2025,
            "catchments": [{"id": "roofs", "surface": "hard_roof", "area_m2": 3000}],
            "facilities": list(facilities.values()),
        })  # fmt: skip
    site = Site.model_validate({"schema_version": 1, "districts": districts})
    problems = check_rules(site)
    if problems:
        raise ValueError(f"generated inventory breaks the rules: {problems[:3]}")
    return site


# --- the raw baseline -----------------------------------------------------------------------------


@dataclass
class RawResult:
    polls: int
    requests: int
    errors: int
    seconds: float
    connections: int


async def raw_rate(devices: Sequence[SimDeviceSpec], seconds: float, timeout_s: float = 2.0) -> RawResult:
    """pymodbus alone: one AsyncModbusTcpClient per device (the collector's arrangement: a connection
    per TCP device), each issuing that device's read requests (the collector's plan) back-to-back
    for `seconds`; counts completed device polls (all requests of a device answered)."""
    from pymodbus.client import AsyncModbusTcpClient

    from collector.requests import plan_requests
    from devices.profile import find_profile

    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=d.port, timeout=timeout_s, retries=1, reconnect_delay=0)
        for d in devices
    ]
    ok = await asyncio.gather(*(c.connect() for c in clients))
    if not all(ok):
        raise RuntimeError(f"raw baseline: {ok.count(False)} of {len(ok)} connections failed")
    plans = [plan_requests(find_profile(d.profile)) for d in devices]
    counts = {"polls": 0, "requests": 0, "errors": 0}
    go = asyncio.Event()
    stop_at = 0.0

    async def loop(client: AsyncModbusTcpClient, unit: int, plan: list[Any]) -> None:
        await go.wait()
        while time.monotonic() < stop_at:
            try:
                for req in plan:
                    if req.table == "holding":
                        r = await client.read_holding_registers(req.address, count=req.count, device_id=unit)
                    elif req.table == "input":
                        r = await client.read_input_registers(req.address, count=req.count, device_id=unit)
                    elif req.table == "coil":
                        r = await client.read_coils(req.address, count=req.count, device_id=unit)
                    else:
                        r = await client.read_discrete_inputs(req.address, count=req.count, device_id=unit)
                    if r.isError():
                        raise RuntimeError(r)
                    counts["requests"] += 1
            except Exception:
                counts["errors"] += 1
                continue
            if time.monotonic() <= stop_at:
                counts["polls"] += 1

    tasks = [
        asyncio.create_task(loop(c, d.unit_id, p)) for c, d, p in zip(clients, devices, plans, strict=True)
    ]
    await asyncio.sleep(0)
    started = time.monotonic()
    stop_at = started + seconds
    go.set()
    await asyncio.gather(*tasks)
    for c in clients:
        c.close()
    return RawResult(counts["polls"], counts["requests"], counts["errors"], seconds, len(clients))


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve_main()
    else:
        raise SystemExit("usage: python -m bench.modbus_load serve  (spec JSON on stdin)")
