"""The Modbus server harness, checked from outside with mbpoll over TCP and over a socat serial line."""

from __future__ import annotations

import subprocess

import pytest

from jieshui.services import SerialPtyPair
from simulators.modbus_server import SerialLine, register_block
from tests.conftest import ModbusFactory


def _mbpoll(*args: str) -> subprocess.CompletedProcess[str]:
    # -1: poll once; -0: addresses are 0-based, as on the wire; -t 4: holding registers (FC 3).
    return subprocess.run(
        ["mbpoll", "-1", "-0", *args], capture_output=True, text=True, check=False, timeout=20
    )


def _values(stdout: str) -> list[int]:
    return [int(line.split()[-1]) for line in stdout.splitlines() if line.startswith("[")]


def test_tcp_server_serves_each_unit_id(modbus_server: ModbusFactory) -> None:
    server = modbus_server([register_block(1, [100, 200, 300]), register_block(2, [7, 8])])
    one = _mbpoll(
        "-m", "tcp", "-p", str(server.port), "-a", "1", "-r", "0", "-c", "3", "-t", "4", "127.0.0.1"
    )
    two = _mbpoll(
        "-m", "tcp", "-p", str(server.port), "-a", "2", "-r", "0", "-c", "2", "-t", "4", "127.0.0.1"
    )
    assert (one.returncode, _values(one.stdout)) == (0, [100, 200, 300])
    assert (two.returncode, _values(two.stdout)) == (0, [7, 8])


def test_registers_change_while_serving(modbus_server: ModbusFactory) -> None:
    server = modbus_server([register_block(1, [0, 0])])
    server.set_registers(1, 1, [4242])
    result = _mbpoll(
        "-m", "tcp", "-p", str(server.port), "-a", "1", "-r", "0", "-c", "2", "-t", "4", "127.0.0.1"
    )
    assert _values(result.stdout) == [0, 4242]


def test_reading_past_the_map_is_an_illegal_address(modbus_server: ModbusFactory) -> None:
    server = modbus_server([register_block(1, [1, 2])])
    result = _mbpoll(
        "-m", "tcp", "-p", str(server.port), "-a", "1", "-r", "0", "-c", "3", "-t", "4", "127.0.0.1"
    )
    assert result.returncode != 0
    assert "Illegal data address" in result.stderr


@pytest.mark.parametrize("baudrate", [9600, 19200])
def test_rtu_server_on_a_serial_line(
    modbus_server: ModbusFactory, serial_pair: SerialPtyPair, baudrate: int
) -> None:
    modbus_server(
        [register_block(5, [11, 22, 33])], serial=SerialLine(serial_pair.server_port, baudrate=baudrate)
    )
    result = _mbpoll(
        "-m",
        "rtu",
        "-b",
        str(baudrate),
        "-P",
        "none",
        "-a",
        "5",
        "-r",
        "0",
        "-c",
        "3",
        "-t",
        "4",
        serial_pair.client_port,
    )
    assert (result.returncode, _values(result.stdout)) == (0, [11, 22, 33]), result.stderr
