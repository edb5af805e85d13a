"""Real-server fixtures: influxd, mosquitto, socat serial lines and pymodbus servers on free ports.

Nothing here is mocked. The servers come from the system's binaries (scripts/bootstrap.sh installs
them); a missing binary fails the run with the command that installs it. Each test that writes gets a
fresh InfluxDB database, dropped afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from pymodbus.simulator import SimDevice

from jieshui.services import InfluxServer, MosquittoServer, SerialPtyPair
from simulators.modbus_server import ModbusServerThread, SerialLine
from store.influx import InfluxConfig, InfluxStore

ADMIN_USER = "jieshui-admin"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One influxd for the whole run (auth off)."""
    server = InfluxServer(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influx_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """An influxd with authentication on and one admin user."""
    server = InfluxServer(tmp_path_factory.mktemp("influxd-auth"), auth=True)
    server.start()
    # With auth on and no user yet, influxd accepts exactly this statement without credentials.
    response = httpx.post(
        f"{server.url}/query",
        data={"q": f"CREATE USER \"{ADMIN_USER}\" WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"},
    )
    response.raise_for_status()
    yield server
    server.stop()


def _database_name(request: pytest.FixtureRequest) -> str:
    return "t_" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]


@pytest.fixture
def influx(influx_server: InfluxServer, request: pytest.FixtureRequest) -> Iterator[InfluxStore]:
    """A store on a fresh, bootstrapped database of the session's influxd, dropped after the test."""
    store = InfluxStore(InfluxConfig(url=influx_server.url, database=_database_name(request)))
    store.bootstrap()
    yield store
    store.execute(f'DROP DATABASE "{store.config.database}"')
    store.close()


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """One mosquitto for the whole run, persistence on, no queue limit."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[SerialPtyPair]:
    """A socat pseudo-terminal pair standing in for an RS-485 line."""
    pair = SerialPtyPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


ModbusFactory = Callable[..., ModbusServerThread]


@pytest.fixture
def modbus_server() -> Iterator[ModbusFactory]:
    """Start pymodbus servers (TCP on a free port, or RTU with `serial=`); all stopped after the test."""
    started: list[ModbusServerThread] = []

    def start(devices: Sequence[SimDevice], serial: SerialLine | None = None) -> ModbusServerThread:
        server = ModbusServerThread(devices, serial=serial).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
