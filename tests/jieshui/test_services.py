"""The server launcher: missing binaries fail with the install command; servers start, answer, stop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jieshui.errors import ServiceError
from jieshui.services import InfluxServer, MosquittoServer, find_binary


def test_missing_binary_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceError, match=r"influxd-nope not found .* apt-get install influxdb-nope"):
        find_binary("influxd-nope", "influxdb-nope")


def test_port_in_use_is_refused_before_starting(tmp_path: Path, influx_server: InfluxServer) -> None:
    clash = InfluxServer(tmp_path, port=influx_server.port)
    with pytest.raises(
        ServiceError, match=f"influxd cannot listen on 127.0.0.1:{influx_server.port}: the port"
    ):
        clash.start(timeout_s=5)
    assert not clash.running


def test_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    broken = MosquittoServer(tmp_path, extra_config="no_such_option 1")
    with pytest.raises(ServiceError, match="mosquitto did not become ready") as info:
        broken.start(timeout_s=5)
    assert "no_such_option" in str(info.value)  # mosquitto's own complaint, from its log
    assert not broken.running


def test_influxd_is_configured_as_documented(influx_server: InfluxServer) -> None:
    config = influx_server.config_path.read_text()
    assert "reporting-enabled = false" in config
    assert "store-enabled = false" in config  # no _internal database
    # The influx CLI, a third-party client, sees no _internal database.
    result = subprocess.run(
        ["influx", "-host", "127.0.0.1", "-port", str(influx_server.port), "-execute", "SHOW DATABASES"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    assert "_internal" not in result.stdout


def test_mosquitto_keeps_retained_messages_and_has_no_queue_limit(mosquitto_server: MosquittoServer) -> None:
    assert "max_queued_messages 0" in mosquitto_server.config_path.read_text()
    topic = "jieshui/changning/xinjing-6/car-wash-1/status"
    port = str(mosquitto_server.port)
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            topic,
            "-m",
            '{"online":true}',
            "-r",
            "-q",
            "1",
        ],
        check=True,
        timeout=10,
    )
    # A subscriber arriving later still gets the retained status (third-party client: mosquitto_sub).
    result = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-C", "1", "-W", "5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert result.stdout.strip() == '{"online":true}'


def test_kill_and_restart_keep_data(tmp_path: Path) -> None:
    server = InfluxServer(tmp_path / "influxd")
    server.start()
    try:
        import httpx

        httpx.post(f"{server.url}/query", data={"q": "CREATE DATABASE keep"}).raise_for_status()
        httpx.post(f"{server.url}/write?db=keep", content=b"m v=1 1").raise_for_status()
        server.kill()
        assert not server.running
        server.restart()
        body = httpx.get(f"{server.url}/query", params={"db": "keep", "q": "SELECT v FROM m"}).json()
        assert body["results"][0]["series"][0]["values"] == [["1970-01-01T00:00:00.000000001Z", 1]]
    finally:
        server.stop()
    assert not server.running
    assert MosquittoServer(tmp_path).url.startswith("mqtt://127.0.0.1:")
