"""The simulators' Modbus face, read from outside by mbpoll over TCP and over a serial pty: every
documented register of every simulated device holds what the simulator's state says, per the profile."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.profile import find_profile
from devices.registers import codecs_for, encode_values
from jieshui.inventory import ModbusRtu, ModbusTcp, Site
from simulators.model import SHANGHAI
from simulators.runner import LiveSimulation, start_live
from tests.simulators.conftest import make_site

# 06:30:30 local on a summer day: the reuse pump runs (irrigation hours), the last reading is 06:30.
FROZEN_AT = int(dt.datetime(2025, 7, 15, 6, 30, 30, tzinfo=SHANGHAI).timestamp()) * 10**9
MBPOLL_TABLE = {"coil": "0", "discrete": "1", "input": "3", "holding": "4"}


def mbpoll(
    conn: ModbusTcp | ModbusRtu, table: str, address: int, count: int, timeout_s: float = 1.0
) -> subprocess.CompletedProcess[str]:
    """Read with mbpoll (third-party client), 0-based addresses, once."""
    args = ["mbpoll", "-1", "-0", "-o", str(timeout_s), "-a", str(conn.unit_id), "-t", MBPOLL_TABLE[table],
            "-r", str(address), "-c", str(count)]  # fmt: skip
    if isinstance(conn, ModbusTcp):
        args += ["-m", "tcp", "-p", str(conn.port), conn.host]
    else:
        args += ["-m", "rtu", "-b", str(conn.baudrate), "-P", "none", conn.serial_port]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)


def words(stdout: str) -> list[int]:
    """The values mbpoll printed, as unsigned 16-bit words (it adds the signed value in brackets)."""
    return [int(m.group(1)) for m in re.finditer(r"^\[\d+\]:\s+(\d+)", stdout, re.M)]


def _live(site: Site, tmp_path: Path) -> Iterator[LiveSimulation]:
    # speed 1e-9: the simulated clock stands still at FROZEN_AT for the whole test.
    sim = start_live(site, speed=1e-9, seed=3, broker=None, work_dir=tmp_path, start_ns=FROZEN_AT)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_mbpoll_reads_every_register_as_the_simulator_state_says(tmp_path: Path, transport: str) -> None:
    site = make_site(tmp_path, transport)  # type: ignore[arg-type]
    for sim in _live(site, tmp_path):
        checked = 0
        profiles_seen = set()
        for _, community in site.communities():
            for _, device in community.devices():
                if device.connection.protocol == "mqtt":
                    continue
                profile = find_profile(device.profile)
                profiles_seen.add(profile.name)
                state = sim.world.reading(community.id, device.id)
                image = encode_values(profile, state)
                for codec in codecs_for(profile):
                    reg = codec.register
                    result = mbpoll(device.connection, reg.table, reg.address, reg.count)  # type: ignore[arg-type]
                    assert result.returncode == 0, (device.id, reg.quantity, result.stderr)
                    got = words(result.stdout)
                    expected = [image[reg.table][a] for a in codec.addresses]
                    assert got == expected, (device.id, reg.quantity)
                    # Decoded per the profile, the registers give the simulator's value to its resolution.
                    value = codec.decode(got)
                    if isinstance(value, bool):
                        assert value == bool(state[reg.quantity])
                    else:
                        assert value == pytest.approx(
                            float(state[reg.quantity]), abs=abs(reg.scale) / 2 + 1e-9, rel=1e-6
                        )
                    checked += 1
        assert profiles_seen == {"hy-rwc200", "lq-rhc10", "ul-wm100", "hs-rp55"}
        assert (
            checked
            == sum(len(codecs_for(find_profile(p))) for p in ("hy-rwc200", "lq-rhc10", "hs-rp55")) + 2 * 3
        )


def test_state_is_live_the_reuse_pump_runs_in_irrigation_hours(tmp_path: Path) -> None:
    site = make_site(tmp_path, "tcp")
    for sim in _live(site, tmp_path):
        state = sim.world.reading("xinjing-6", "rw-controller")
        # 06:30 in July, no rain in the last 24 h on this seed's day or not: the pump state and the
        # treatment flow agree with each other, and level is a share of capacity.
        assert (state["treatment_flow_m3h"] > 0) == state["pump_running"]
        assert 0 <= state["level_pct"] <= 100
        conn = next(
            d.connection for _, d in next(iter(site.communities()))[1].devices() if d.id == "rw-controller"
        )
        coil = mbpoll(conn, "coil", 0, 1)  # type: ignore[arg-type]
        assert words(coil.stdout) == [1 if state["pump_running"] else 0]


def test_addresses_outside_the_map_are_illegal(tmp_path: Path) -> None:
    site = make_site(tmp_path, "tcp")
    for _ in _live(site, tmp_path):
        conn = next(
            d.connection for _, d in next(iter(site.communities()))[1].devices() if d.id == "rw-controller"
        )
        past_end = mbpoll(conn, "holding", 20, 2)  # hy-rwc200's map ends at address 20
        assert past_end.returncode != 0
        assert "Illegal data address" in past_end.stderr
        wrong_table = mbpoll(conn, "input", 0, 1)  # it has no input registers
        assert "Illegal data address" in wrong_table.stderr
