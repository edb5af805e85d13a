"""TLS to MQTT and InfluxDB with a private CA, against a real mosquitto (TLS listener) and a real influxd
(HTTPS only), both with a server certificate signed by a CA made for the test (tests/security/certs.py).

What operators rely on: with the CA file set (`JIESHUI_MQTT_CA_FILE`, `JIESHUI_INFLUX_CA_FILE`) the
collector, the simulators and the store work over TLS; without it (or with another CA) every client
refuses the server, says which certificate and which variable, and the collector loses nothing
meanwhile. Third-party clients (mosquitto_pub/sub, curl, the influx CLI) check the servers from outside.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from devices.profile import find_profile
from jieshui.errors import JieshuiError, StoreError, StoreUnavailableError
from jieshui.inventory import Site
from jieshui.services import InfluxServer, MosquittoServer
from jieshui.settings import Settings, parse_mqtt_url
from simulators.mqtt_face import payload_for
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.security.certs import TlsFiles, make_ca, make_tls_files
from tests.simulators.conftest import EXAMPLES, MORNING, acknowledged

TOPIC = "jieshui/changning/xinjing-6/car-wash-1/telemetry"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A private CA and the certificate it signed for 127.0.0.1 and localhost."""
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the servers use (a wrong CA file)."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), "Some Other CA")[0]


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: TlsFiles) -> Iterator[MosquittoServer]:
    """mosquitto with one listener, MQTT over TLS only."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto-tls"), tls=pki.server)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_influxd(tmp_path_factory: pytest.TempPathFactory, pki: TlsFiles) -> Iterator[InfluxServer]:
    """influxd whose HTTP API speaks HTTPS only."""
    server = InfluxServer(tmp_path_factory.mktemp("influxd-tls"), tls=pki.server)
    server.start()
    yield server
    server.stop()


def _car_wash_site() -> Site:
    """examples/community.yaml with only its MQTT device, the car-wash unit (no Modbus to poll)."""
    raw = yaml.safe_load((EXAMPLES / "community.yaml").read_text(encoding="utf-8"))
    community = raw["districts"][0]["communities"][0]
    community["facilities"] = [f for f in community["facilities"] if f["id"] == "car-wash"]
    community["claims"] = [c for c in community["claims"] if c["facility"] == "car-wash"]
    return Site.model_validate(raw)


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _mosquitto_args(broker: MosquittoServer, *tls: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(broker.port), *tls]


def _publish_outside(broker: MosquittoServer, ca: Path, payloads: list[bytes]) -> None:
    """Publish with mosquitto_pub (QoS 1) over TLS, trusting `ca`."""
    for payload in payloads:
        done = _run("mosquitto_pub", *_mosquitto_args(broker, "--cafile", str(ca)), "-q", "1", "-t", TOPIC,
                    "-m", payload.decode())  # fmt: skip
        assert done.returncode == 0, done.stderr


def _status_messages(first_seq: int, count: int) -> list[bytes]:
    """Valid status messages of the car-wash unit (wx-cw01), sequence numbers from `first_seq`."""
    profile = find_profile("wx-cw01")
    now_ms = time.time_ns() // 1_000_000
    out = []
    for i in range(count):
        values: dict[str, float | int | str] = {
            "wash_count": 100_000 + first_seq + i, "fresh_m3": 900.0 + i, "recycled_m3": 4000.0 + i,
        }  # fmt: skip
        out.append(json.dumps(payload_for(profile, values, "status", first_seq + i, now_ms + i)).encode())
    return out


def _counters(collector: CollectorProcess) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(collector.buffer)) as db:
        return {str(k): int(v) for k, v in db.execute("SELECT name, value FROM counter").fetchall()}


def _log(collector: CollectorProcess) -> str:
    return (collector.work / f"collector-{collector.runs}.log").read_text(errors="replace")


# -- from outside: third-party clients ----------------------------------------------------------------
def test_mosquitto_clients_trust_the_broker_only_with_the_ca(
    tls_broker: MosquittoServer, pki: TlsFiles, other_ca: Path
) -> None:
    topic = "tls/outside"
    trusted = _mosquitto_args(tls_broker, "--cafile", str(pki.ca_cert))
    # retained, so the subscriber that comes after gets it: no race between the two clients
    pub = _run("mosquitto_pub", *trusted, "-q", "1", "-r", "-t", topic, "-m", "over tls")
    assert pub.returncode == 0, pub.stderr
    sub = _run("mosquitto_sub", *trusted, "-t", topic, "-C", "1", "-W", "5")
    assert (sub.returncode, sub.stdout.strip()) == (0, "over tls"), sub.stderr

    # Another CA, or the system's: the clients refuse the certificate. No TLS at all: the broker does.
    for tls in (["--cafile", str(other_ca)], ["--capath", "/etc/ssl/certs"], []):
        refused = _run("mosquitto_pub", *_mosquitto_args(tls_broker, *tls), "-q", "1", "-t", topic, "-m", "x")
        assert refused.returncode != 0, (tls, refused.stdout)
        assert ("TLS" in refused.stderr) if tls else ("connection" in refused.stderr.lower()), refused.stderr
    assert "wrong version number" in tls_broker.log_tail(50)  # plaintext MQTT on the TLS port


def test_curl_and_the_influx_cli_trust_influxd_only_with_the_ca(
    tls_influxd: InfluxServer, pki: TlsFiles
) -> None:
    ping = f"{tls_influxd.url}/ping"
    ok = _run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(pki.ca_cert), ping)
    assert (ok.returncode, ok.stdout) == (0, "204"), ok.stderr
    untrusted = _run("curl", "-sS", "-o", "/dev/null", ping)
    assert untrusted.returncode == 60, untrusted.stderr  # curl: "SSL certificate problem"
    plain = _run("curl", "-sS", "-w", " %{http_code}", ping.replace("https://", "http://"))
    assert plain.stdout.strip().endswith("400"), plain.stdout
    assert "HTTP request to an HTTPS server" in plain.stdout

    # The influx CLI 1.x has -ssl but no CA option: Go reads the trusted CAs from SSL_CERT_FILE.
    cli = [
        "influx",
        "-ssl",
        "-host",
        "127.0.0.1",
        "-port",
        str(tls_influxd.port),
        "-execute",
        "SHOW DATABASES",
    ]
    trusted = _run(*cli, env={"SSL_CERT_FILE": str(pki.ca_cert)})
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    refused = _run(*cli, env={"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"})
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stdout + refused.stderr


# -- the store ------------------------------------------------------------------------------------------
def test_store_over_https_verifies_against_the_ca_file(
    tls_influxd: InfluxServer,
    influx_server: InfluxServer,
    pki: TlsFiles,
    other_ca: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = tls_influxd.url
    monkeypatch.setenv("JIESHUI_INFLUX_URL", url)
    monkeypatch.setenv("JIESHUI_INFLUX_DATABASE", "t_tls_store")
    monkeypatch.setenv("JIESHUI_INFLUX_CA_FILE", str(pki.ca_cert))
    config = InfluxConfig.from_settings(Settings())
    assert config.ca_file == str(pki.ca_cert)
    with InfluxStore(config) as store:
        store.bootstrap()
        store.write_body(b"m,site=a v=1.5 1000000000")
        (series,) = store.query("SELECT v FROM m")
        assert list(series.values("v")) == [1.5]
        store.execute('DROP DATABASE "t_tls_store"')

    # Without the CA file (the system's CAs) or with another CA: refused, precisely, and retryable,
    # so the collector keeps what it buffered.
    for ca_file, checked in (
        (None, "the system's CAs"),
        (str(other_ca), f"JIESHUI_INFLUX_CA_FILE={other_ca}"),
    ):
        store = InfluxStore(config.model_copy(update={"ca_file": ca_file}))
        with store, pytest.raises(StoreUnavailableError) as refused:
            store.write_body(b"m v=2 2000000000")
        message = str(refused.value)
        assert message.startswith(f"the TLS certificate of {url} is not trusted (")
        assert f"checked against {checked}" in message
        assert "set JIESHUI_INFLUX_CA_FILE to the file of the CA certificate that signed it" in message
        assert refused.value.retryable

    # The v2 API goes through influxdb-client: it gets the same CA. influxd 1.6 has no /api/v2/write,
    # so with the CA the request gets through TLS to a 404; without it, the same refusal as above.
    v2 = InfluxConfig(url=url, api="v2", token=SecretStr("t"), org="o", bucket="b", ca_file=str(pki.ca_cert))
    with InfluxStore(v2) as store, pytest.raises(StoreError, match=r"\(404\)"):
        store.write_body(b"m v=3 3000000000")
    store = InfluxStore(v2.model_copy(update={"ca_file": None}))
    with (
        store,
        pytest.raises(StoreUnavailableError, match=re.escape(f"the TLS certificate of {url} is not trusted")),
    ):
        store.write_body(b"m v=3 3000000000")

    # Plain HTTP to the HTTPS port: said so (and retryable), not taken for refused points.
    store = InfluxStore(config.model_copy(update={"url": url.replace("https://", "http://")}))
    with (
        store,
        pytest.raises(StoreUnavailableError, match=r"serves HTTPS only .*use https:// in JIESHUI_INFLUX_URL"),
    ):
        store.ping()

    # And https:// to a plain-HTTP influxd (the session's): said so too.
    plain_url = influx_server.url.replace("http://", "https://")
    store = InfluxStore(config.model_copy(update={"url": plain_url}))
    with (
        store,
        pytest.raises(
            StoreUnavailableError, match=re.escape(f"InfluxDB did not answer TLS at {plain_url} (")
        ),
    ):
        store.ping()

    # A CA file that is not there, or holds no certificate: refused at once, naming the variable.
    for bad in ("/nonexistent/ca.pem", str(pki.server_key)):
        with pytest.raises(
            StoreError, match=re.escape(f"JIESHUI_INFLUX_CA_FILE: cannot load a CA certificate from '{bad}'")
        ):
            InfluxStore(config.model_copy(update={"ca_file": bad}))


def test_store_names_a_certificate_issued_for_another_host(tmp_path: Path) -> None:
    pki = make_tls_files(tmp_path / "pki", hosts=("influx.example",))
    with InfluxServer(tmp_path / "influxd", tls=pki.server) as server:
        assert isinstance(server, InfluxServer)
        store = InfluxStore(InfluxConfig(url=server.url, ca_file=str(pki.ca_cert)))
        with store, pytest.raises(StoreUnavailableError) as refused:
            store.ping()
    assert str(refused.value).startswith(
        f"the TLS certificate of {server.url} does not name that host (IP address mismatch, "
    )
    assert "connect with a name or address the certificate lists in its subjectAltName" in str(refused.value)


# -- the simulators -------------------------------------------------------------------------------------
def test_simulated_devices_publish_over_tls_only_with_the_ca(
    tls_broker: MosquittoServer, pki: TlsFiles, tmp_path: Path
) -> None:
    site = _car_wash_site()
    broker = parse_mqtt_url(tls_broker.url)
    with pytest.raises(JieshuiError) as refused:
        start_live(site, speed=3600, broker=broker, work_dir=tmp_path, start_ns=MORNING)
    assert str(refused.value).startswith(
        f"simulated device car-wash-1: the TLS certificate of MQTT broker 127.0.0.1:{tls_broker.port} is not trusted"
    )
    assert "set JIESHUI_MQTT_CA_FILE" in str(refused.value)
    sim = start_live(site, speed=3600, broker=broker, work_dir=tmp_path, start_ns=MORNING, keep_published=True,
                     mqtt_ca_file=str(pki.ca_cert))  # fmt: skip
    try:
        time.sleep(1.5)
    finally:
        sim.stop()
    assert len(acknowledged(sim)) > 3  # the broker acknowledged them over TLS


# -- the collector --------------------------------------------------------------------------------------
def _collector(
    tmp_path: Path, broker: MosquittoServer, influxd: InfluxServer, database: str
) -> CollectorProcess:
    """A collector of the car-wash site with an id (and so an MQTT session) of its own."""
    collector = CollectorProcess(_car_wash_site(), tmp_path / "collector", influxd.url, broker.url, database)
    collector.args[collector.args.index("c1")] = database.replace("_", "-")
    collector.env["JIESHUI_HEALTH_INTERVAL_S"] = "0.5"
    return collector


def _wait_stored(store: InfluxStore, expected: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    stored = -1
    while time.monotonic() < deadline:
        found = store.query("SELECT count(wash_count) FROM car_wash")
        stored = int(found[0].values("count")[0]) if found else 0
        if stored >= expected:
            return stored
        time.sleep(0.2)
    return stored


def test_collector_reads_mqtts_and_writes_https_with_the_ca_files(
    tmp_path: Path, tls_broker: MosquittoServer, tls_influxd: InfluxServer, pki: TlsFiles
) -> None:
    collector = _collector(tmp_path, tls_broker, tls_influxd, "t_tls_collect")
    collector.env |= {"JIESHUI_MQTT_CA_FILE": str(pki.ca_cert), "JIESHUI_INFLUX_CA_FILE": str(pki.ca_cert)}
    collector.start()
    sim = None
    try:
        collector.wait_for(lambda h: h["mqtt_connected"] is True, timeout_s=10)
        sim = start_live(_car_wash_site(), speed=3600, broker=parse_mqtt_url(tls_broker.url),
                         work_dir=tmp_path / "sim", start_ns=MORNING, keep_published=True,
                         mqtt_ca_file=str(pki.ca_cert))  # fmt: skip
        time.sleep(2)
        sim.stop()
        _publish_outside(tls_broker, pki.ca_cert, _status_messages(50_000, 2))  # a third-party publisher
        published = len(acknowledged(sim)) + 2
        with InfluxStore(
            InfluxConfig(url=tls_influxd.url, database="t_tls_collect", ca_file=str(pki.ca_cert))
        ) as store:
            assert _wait_stored(store, published) == published > 5
            collector.wait_drained()
            assert collector.health()["last_write_error"] == ""
            store.execute('DROP DATABASE "t_tls_collect"')
    finally:
        if sim is not None:
            sim.stop()
        assert collector.stop() == 0
    assert "Traceback" not in _log(collector)


def test_collector_without_the_ca_files_refuses_the_servers_and_loses_nothing(
    tmp_path: Path, tls_broker: MosquittoServer, tls_influxd: InfluxServer, pki: TlsFiles
) -> None:
    database = "t_tls_refuse"
    collector = _collector(tmp_path, tls_broker, tls_influxd, database)
    ca = str(pki.ca_cert)

    # 1. The broker trusted, InfluxDB not: readings are accepted into the buffer and stay there. The
    #    collector's persistent session now exists, so the broker keeps its messages while it is away.
    collector.env["JIESHUI_MQTT_CA_FILE"] = ca
    collector.start()
    collector.wait_for(lambda h: h["mqtt_connected"] is True, timeout_s=10)
    _publish_outside(tls_broker, pki.ca_cert, _status_messages(1, 3))
    collector.wait_for(
        lambda h: "not trusted" in str(h["last_write_error"]) and int(str(h["buffer_depth"])) > 3
    )
    assert collector.stop() == 0
    first = _counters(collector)
    assert first["accepted_mqtt"] == 3

    # 2. No CA file at all: the broker's certificate is refused, logged once with what to set, and no
    #    message is accepted; InfluxDB's is refused too, the buffer keeps every line, nothing dead-letters.
    del collector.env["JIESHUI_MQTT_CA_FILE"]
    collector.start()
    _publish_outside(tls_broker, pki.ca_cert, _status_messages(10, 4))  # queued in the collector's session
    collector.wait_for(lambda h: "not trusted" in str(h["last_write_error"]))
    time.sleep(2.5)  # paho retries after 1 s and 2 s: the refusal is still logged once
    health = collector.health()
    assert health["mqtt_connected"] is False
    assert health["last_write_error"] == (
        f"the TLS certificate of {tls_influxd.url} is not trusted (unable to get local issuer certificate; "
        "checked against the system's CAs): set JIESHUI_INFLUX_CA_FILE to the file of the CA certificate "
        f"that signed it ({tls_influxd.url}/write)"
    )
    assert int(str(health["buffer_depth"])) >= 3
    assert 'jieshui_write_errors_total{kind="StoreUnavailableError"}' in collector.metrics()
    assert collector.stop() == 0
    log = _log(collector)
    refusal = (
        f"the TLS certificate of MQTT broker 127.0.0.1:{tls_broker.port} is not trusted (unable to get local "
        "issuer certificate; checked against the system's CAs): set JIESHUI_MQTT_CA_FILE to the file of the "
        "CA certificate that signed it; retrying"
    )
    assert log.count(refusal) == 1, log
    assert "ERROR collector.sources.mqtt" in log
    assert (
        f"InfluxDB write failed (StoreUnavailableError): the TLS certificate of {tls_influxd.url} is not"
        in log
    )
    assert "Traceback" not in log
    second = _counters(collector)
    assert second["accepted_mqtt"] == first["accepted_mqtt"]  # nothing came in
    assert not any(name.startswith("dead_letter") for name in second)

    # 3. Both CA files: the session's queued messages arrive, the buffer drains, everything is stored.
    collector.env |= {"JIESHUI_MQTT_CA_FILE": ca, "JIESHUI_INFLUX_CA_FILE": ca}
    restarted_ns = time.time_ns()
    collector.start()
    try:
        with InfluxStore(InfluxConfig(url=tls_influxd.url, database=database, ca_file=ca)) as store:
            assert _wait_stored(store, 7) == 7  # 3 buffered while InfluxDB was refused, 4 kept by the broker
            collector.wait_drained()
            # the collector's own points from the runs that could not write are there too
            (health_points,) = store.query(
                f"SELECT count(buffer_depth) FROM collector_health WHERE time < {restarted_ns}"
            )
            assert health_points.values("count")[0] > 0
            store.execute(f'DROP DATABASE "{database}"')
    finally:
        assert collector.stop() == 0
    assert _counters(collector)["accepted_mqtt"] == 7


def test_collector_refuses_a_ca_file_it_cannot_load_at_start(
    tmp_path: Path, tls_broker: MosquittoServer
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(_car_wash_site().model_dump(mode="json"), allow_unicode=True))
    command = [sys.executable, "-m", "jieshui.cli", "collect", "--site", str(site_file), "--health-port", "0",
               "--buffer", str(tmp_path / "buffer.sqlite3"), "--mqtt-url", tls_broker.url]  # fmt: skip
    for variable in ("JIESHUI_MQTT_CA_FILE", "JIESHUI_INFLUX_CA_FILE"):
        done = _run(*command, env={variable: str(tmp_path / "missing.pem")}, timeout=30)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (
            f"jieshui collect: {variable}: cannot load a CA certificate from '{tmp_path / 'missing.pem'}': "
            "No such file or directory"
        )
