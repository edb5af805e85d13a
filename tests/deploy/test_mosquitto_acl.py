"""MQTT accounts against a real mosquitto running the config docker-compose ships.

The broker is the system's mosquitto 2 started with deploy/mosquitto/mosquitto.conf (only the port and
the file locations changed), reading the passwd and acl that `jieshui.mqtt_accounts` writes for
examples/district.yaml. Clients are paho-mqtt 2 (MQTT 5 unless a test says otherwise), converted at
the edge into plain CONNACK/SUBACK/PUBACK codes and received messages. "Dropped" is shown by order,
not by waiting: a message the broker refused would have reached the observer before a later one that
does arrive.
"""

from __future__ import annotations

import os
import pwd
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from jieshui.inventory import Mqtt, Site, load_site
from jieshui.mqtt_accounts import (
    BROKER_UPTIME_TOPIC,
    DEVICE_PASSWORD_LENGTH,
    DeviceAccount,
    device_accounts,
    device_password,
    hash_password,
    main,
    verify_password,
    write_accounts,
)
from jieshui.services import MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.mqtt_face import status_topic, telemetry_topic
from simulators.runner import start_live

ROOT = Path(__file__).parents[2]
DISTRICT = ROOT / "examples" / "district.yaml"
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
COMPOSE = ROOT / "docker-compose.yml"
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
COLLECTOR = "jieshui-collector"
COLLECTOR_PASSWORD = "collector-password-for-tests-0123"
NOT_AUTHORIZED = 135  # MQTT 5 reason code (paho maps MQTT 3.1.1's CONNACK 5 to it)
#: PUBACK reason codes of an accepted publish: success, or success with nobody subscribed yet
ACCEPTED = (0, 16)
WAIT_S = 10.0


class ShippedMosquitto(MosquittoServer):
    """mosquitto with the shipped config: the listener moved to a free loopback port, the auth and data
    locations moved under the test's directories, and `user` set (the image's default is mosquitto)."""

    def __init__(self, data_dir: Path, auth_dir: Path, user: str = "root") -> None:
        super().__init__(data_dir)
        self.auth_dir = auth_dir
        self.user = user

    def _write_config(self) -> None:
        text = SHIPPED_CONF.read_text(encoding="utf-8")
        for old, count in (("\nlistener 1883\n", 1), ("/mosquitto/auth/", 2), ("/mosquitto/data/", 1)):
            assert text.count(old) == count, f"{SHIPPED_CONF} no longer has {old.strip()!r} {count} time(s)"
        text = (
            text.replace("\nlistener 1883\n", f"\nlistener {self.port} {self.host}\n")
            .replace("/mosquitto/auth/", f"{self.auth_dir}/")
            .replace("/mosquitto/data/", f"{self.data_dir}/")
        )
        self.config_path.write_text(f"{text}\nuser {self.user}\n", encoding="utf-8")


class Session:
    """One paho client; its CONNACK, SUBACKs, PUBACKs and messages as plain values."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        # (topic, payload, retained): `retained` marks a retained message sent because of a subscription
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.connack: Any = None
        self._connected = threading.Event()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:12]}", protocol=protocol
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(
            (msg.topic, bytes(msg.payload), msg.retain)
        )
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self._ack(mid, codes)
        self.client.on_publish = lambda _c, _u, mid, code, _p: self._ack(mid, code)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(WAIT_S), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if self.connack is None:
            self.connack = reason
        self._connected.set()

    def _ack(self, mid: int, code: Any) -> None:
        with self._acked:
            self._acks[mid] = code
            self._acked.notify_all()

    def _wait_ack(self, mid: int) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, WAIT_S), f"no acknowledgement of {mid}"
            return self._acks[mid]

    def subscribe(self, topic: str) -> list[int]:
        """Subscribe with QoS 1; the SUBACK's reason codes."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return [int(c.value) for c in self._wait_ack(mid)]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish with QoS 1; the PUBACK's reason code."""
        return int(self._wait_ack(self.client.publish(topic, payload, qos=1, retain=retain).mid).value)

    def receive_until(self, payload: bytes, *, retained: bool = False) -> list[tuple[str, bytes]]:
        """(topic, payload) of every message received up to and including the first with `payload`;
        retained messages sent on subscribing (earlier tests leave some) count only if `retained`."""
        seen: list[tuple[str, bytes]] = []
        while not seen or seen[-1][1] != payload:
            try:
                topic, body, was_retained = self.messages.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"{payload!r} did not arrive; received {seen}")
            if retained or not was_retained:
                seen.append((topic, body))
        return seen

    def received(self) -> list[tuple[str, bytes, bool]]:
        """Everything that arrived so far, retained messages included."""
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def site() -> Site:
    """The example district: two MQTT devices (car-wash-1 of xinjing-6 and of tianshan-wucun)."""
    return load_site(DISTRICT)


@pytest.fixture(scope="module")
def devices(site: Site) -> tuple[DeviceAccount, DeviceAccount]:
    """The two MQTT devices' accounts."""
    first, second = device_accounts(site)
    return first, second


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[ShippedMosquitto]:
    """The shipped config with the accounts of examples/district.yaml."""
    root = tmp_path_factory.mktemp("acl-broker")
    write_accounts(
        site,
        root / "auth",
        device_secret=SECRET,
        collector_user=COLLECTOR,
        collector_password=COLLECTOR_PASSWORD,
    )
    server = ShippedMosquitto(root / "data", root / "auth")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sessions(broker: ShippedMosquitto) -> Iterator[Any]:
    """Open sessions on the broker (`open(user, password)`); all closed after the test."""
    opened: list[Session] = []

    def open_session(
        username: str | None, password: str | None, protocol: MQTTProtocolVersion = mqtt.MQTTv5
    ) -> Session:
        session = Session(broker.port, username, password, protocol)
        opened.append(session)
        return session

    yield open_session
    for s in opened:
        s.close()


def _device(open_session: Any, account: DeviceAccount) -> Session:
    session: Session = open_session(account.username, device_password(SECRET, account.username))
    assert session.connack.value == 0, f"{account.username} refused: {session.connack}"
    return session


def _collector(open_session: Any, topic: str = "jieshui/#") -> Session:
    session: Session = open_session(COLLECTOR, COLLECTOR_PASSWORD)
    assert session.connack.value == 0
    assert session.subscribe(topic) == [1]
    return session


# -- the broker enforces the accounts ---------------------------------------------------------------------


def test_collector_receives_what_a_device_publishes_on_its_own_topics(sessions: Any, devices: Any) -> None:
    a, _ = devices
    collector = _collector(sessions)
    device = _device(sessions, a)
    assert device.publish(a.telemetry_topic, b'{"seq": 1}') == 0
    assert device.publish(a.status_topic, b'{"online": true}', retain=True) == 0
    got = collector.receive_until(b'{"online": true}')
    assert got == [(a.telemetry_topic, b'{"seq": 1}'), (a.status_topic, b'{"online": true}')]


@pytest.mark.parametrize(
    "target", ["other device's telemetry", "other device's status", "below its own telemetry topic"]
)
def test_a_device_publishing_outside_its_own_topics_is_dropped(
    sessions: Any, devices: Any, target: str
) -> None:
    a, b = devices
    topic = {
        "other device's telemetry": b.telemetry_topic,
        "other device's status": b.status_topic,
        "below its own telemetry topic": f"{a.telemetry_topic}/extra",
    }[target]
    collector = _collector(sessions)
    forger = _device(sessions, a)
    assert forger.publish(topic, b"forged") == NOT_AUTHORIZED
    # The refusal was acknowledged before this is sent: had the broker accepted the forged message, the
    # collector would receive it first.
    assert _device(sessions, a).publish(a.telemetry_topic, b"legit") == 0
    assert collector.receive_until(b"legit") == [(a.telemetry_topic, b"legit")]


def test_the_collector_cannot_publish(sessions: Any, devices: Any) -> None:
    a, _ = devices
    observer = _collector(sessions)
    collector: Session = sessions(COLLECTOR, COLLECTOR_PASSWORD)
    assert collector.publish(a.telemetry_topic, b"forged by the collector") == NOT_AUTHORIZED
    assert _device(sessions, a).publish(a.telemetry_topic, b"legit") == 0
    assert observer.receive_until(b"legit") == [(a.telemetry_topic, b"legit")]


def test_a_device_cannot_read_any_topic(sessions: Any, devices: Any) -> None:
    a, b = devices
    other = _device(sessions, b)
    assert other.publish(b.status_topic, b"retained status of b", retain=True) in ACCEPTED
    # The retained message is there: the collector gets it on subscribing.
    assert _collector(sessions, b.status_topic).receive_until(b"retained status of b", retained=True)
    reader = _device(sessions, a)
    # Mosquitto 2.0 may grant the subscriptions and filter at delivery, or refuse them; either way
    # nothing may arrive. Retained messages follow their SUBACK, so they would precede the next SUBACK.
    reader.subscribe(b.status_topic)
    reader.subscribe("jieshui/#")
    reader.subscribe(a.telemetry_topic)
    collector = _collector(sessions)
    assert other.publish(b.telemetry_topic, b"live reading of b") == 0
    assert collector.receive_until(b"live reading of b") == [(b.telemetry_topic, b"live reading of b")]
    # The broker queued the live reading for every subscriber before the collector got it; a SUBSCRIBE
    # sent now is answered after it.
    reader.subscribe(a.status_topic)
    assert reader.received() == []


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("who", ["wrong password", "another device's password", "anonymous"])
def test_bad_credentials_are_refused(
    sessions: Any, devices: Any, protocol: MQTTProtocolVersion, who: str
) -> None:
    a, b = devices
    username, password = {
        "wrong password": (a.username, "not-the-password"),
        "another device's password": (a.username, device_password(SECRET, b.username)),
        "anonymous": (None, None),
    }[who]
    refused = sessions(username, password, protocol)
    assert refused.connack.value == NOT_AUTHORIZED


def test_collectors_can_share_the_load_through_the_acl(sessions: Any, devices: Any) -> None:
    a, _ = devices
    shared = _collector(sessions, "$share/collectors/jieshui/+/+/+/telemetry")
    assert _device(sessions, a).publish(a.telemetry_topic, b"shared") == 0
    assert shared.receive_until(b"shared") == [(a.telemetry_topic, b"shared")]


def _healthcheck(port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """Run the mosquitto healthcheck of docker-compose.yml, as the container's shell would."""
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert " -p 1883 " in command
    command = command.replace("$$", "$").replace(" -p 1883 ", f" -p {port} ")  # compose unescapes $$
    env = {
        "PATH": os.environ["PATH"],
        "JIESHUI_MQTT_COLLECTOR_USER": username,
        "JIESHUI_MQTT_COLLECTOR_PASSWORD": password,
    }
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)


def test_compose_healthcheck_passes_with_the_collector_account_only(
    broker: ShippedMosquitto, devices: Any
) -> None:
    assert _healthcheck(broker.port, COLLECTOR, COLLECTOR_PASSWORD).returncode == 0
    a, _ = devices
    # A device may not read $SYS: mosquitto_sub times out (-W 5) without a message.
    denied = _healthcheck(broker.port, a.username, device_password(SECRET, a.username))
    assert denied.returncode != 0
    assert _healthcheck(broker.port, COLLECTOR, "wrong-password-0123456789").returncode != 0


def test_simulated_devices_log_in_with_their_own_accounts(
    sessions: Any, broker: ShippedMosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The district's MQTT devices only (its Modbus endpoints are fixed ports other tests may hold).
    raw = yaml.safe_load(DISTRICT.read_text(encoding="utf-8"))
    for district in raw["districts"]:
        for community in district["communities"]:
            for facility in community["facilities"]:
                facility["devices"] = [
                    d for d in facility["devices"] if d["connection"]["protocol"] == "mqtt"
                ]
    path = tmp_path / "mqtt-only.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    site = load_site(path)
    expected = {d.telemetry_topic for d in device_accounts(site)}
    assert len(expected) == 2
    collector = _collector(sessions, "jieshui/+/+/+/telemetry")
    # What docker-compose's demo profile does: the secret in the environment, a broker URL without
    # credentials (anonymous clients are refused, so only the per-device accounts can get through).
    monkeypatch.setenv("JIESHUI_MQTT_DEVICE_SECRET", SECRET)
    sim = start_live(site, speed=60, seed=3, broker=parse_mqtt_url(broker.url), work_dir=tmp_path)
    try:
        topics: set[str] = set()
        while topics != expected:
            try:
                topics.add(collector.messages.get(timeout=WAIT_S)[0])
            except queue.Empty:
                pytest.fail(f"telemetry only from {topics}, expected {expected}")
    finally:
        sim.stop()


def _connack(port: int, username: str, password: str) -> int:
    session = Session(port, username, password)
    session.close()
    return int(session.connack.value)


def test_broker_dropping_to_its_user_reads_files_given_to_it_and_reloads_them(site: Site) -> None:
    # What the compose stack does: mqtt-accounts, as root, gives the files (mode 0600) to mosquitto's
    # user; the broker starts as root, drops to that user, then reads them, and again on SIGHUP.
    if os.geteuid() != 0:
        pytest.skip("needs root to give the files to the mosquitto user (the CI machine runs as root)")
    user = pwd.getpwnam("mosquitto")
    owner = (user.pw_uid, user.pw_gid)
    # The broker's user must be able to reach the files: not under pytest's private tmp directories.
    root = Path(tempfile.mkdtemp(prefix="jieshui-acl-"))
    try:
        root.chmod(0o755)
        (root / "data").mkdir()
        os.chown(root / "data", *owner)
        write_accounts(site, root / "auth", device_secret=SECRET, collector_user=COLLECTOR,
                       collector_password=COLLECTOR_PASSWORD, owner=owner)  # fmt: skip
        for name in ("passwd", "acl"):
            st = (root / "auth" / name).stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (*owner, 0o600)
        server = ShippedMosquitto(root / "data", root / "auth", user="mosquitto")
        server.start()
        try:
            assert _connack(server.port, COLLECTOR, COLLECTOR_PASSWORD) == 0
            new_password = "a-new-collector-password-42"
            write_accounts(site, root / "auth", device_secret=SECRET, collector_user=COLLECTOR,
                           collector_password=new_password, owner=owner)  # fmt: skip
            assert server.process is not None
            server.process.send_signal(signal.SIGHUP)
            attempts = 50
            while _connack(server.port, COLLECTOR, new_password) != 0:
                attempts -= 1
                assert attempts > 0, f"new password not accepted after SIGHUP:\n{server.log_tail()}"
            assert _connack(server.port, COLLECTOR, COLLECTOR_PASSWORD) == NOT_AUTHORIZED
        finally:
            server.stop()
        log = server.log_path.read_text(encoding="utf-8")  # complete once stopped (stdout is buffered)
        assert "Reloading config" in log
        assert "Unable to open" not in log
    finally:
        shutil.rmtree(root)


# -- the files ---------------------------------------------------------------------------------------------


def test_a_mosquitto_passwd_hash_verifies_and_ours_has_its_shape() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "someone", "s3cret-Passw0rd"], check=True)
        theirs = path.read_text(encoding="utf-8").strip().split(":", 1)[1]
    assert theirs.startswith("$7$")
    assert verify_password("s3cret-Passw0rd", theirs)
    assert not verify_password("s3cret-passw0rd", theirs)
    ours = hash_password("s3cret-Passw0rd")
    assert re.fullmatch(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==", ours), ours
    assert verify_password("s3cret-Passw0rd", ours)
    assert not verify_password("s3cret-Passw0rd", ours.replace("$7$", "$6$"))
    assert hash_password("x", salt=b"0123456789ab") == hash_password("x", salt=b"0123456789ab")
    assert hash_password("x") != hash_password("x")  # fresh salt


def test_device_passwords_are_deterministic_and_distinct() -> None:
    a = device_password(SECRET, "xinjing-6.car-wash-1")
    assert a == device_password(SECRET, "xinjing-6.car-wash-1")
    assert re.fullmatch(f"[a-z2-7]{{{DEVICE_PASSWORD_LENGTH}}}", a)
    assert a != device_password(SECRET, "tianshan-wucun.car-wash-1")
    assert a != device_password(SECRET + "0", "xinjing-6.car-wash-1")


def test_accounts_follow_the_inventory_and_the_simulators_topics(devices: Any) -> None:
    a, b = devices
    assert (a.username, b.username) == ("xinjing-6.car-wash-1", "tianshan-wucun.car-wash-1")
    for d in (a, b):
        assert d.telemetry_topic == telemetry_topic(d.district, d.community, d.device)
        assert d.status_topic == status_topic(d.district, d.community, d.device)


def test_acl_is_stable_and_passwd_is_salted_afresh(tmp_path: Path, site: Site) -> None:
    first = write_accounts(site, tmp_path / "one", device_secret=SECRET, collector_user=COLLECTOR,
                           collector_password=COLLECTOR_PASSWORD)  # fmt: skip
    second = write_accounts(site, tmp_path / "one", device_secret=SECRET, collector_user=COLLECTOR,
                            collector_password=COLLECTOR_PASSWORD)  # fmt: skip
    assert first == (tmp_path / "one" / "passwd", tmp_path / "one" / "acl")
    acl = first[1].read_text(encoding="utf-8")
    write_accounts(site, tmp_path / "two", device_secret=SECRET, collector_user=COLLECTOR,
                   collector_password=COLLECTOR_PASSWORD)  # fmt: skip
    assert (tmp_path / "two" / "acl").read_text(encoding="utf-8") == acl
    assert (tmp_path / "two" / "passwd").read_text(encoding="utf-8") != second[0].read_text(encoding="utf-8")
    entries = dict(line.split(":", 1) for line in second[0].read_text(encoding="utf-8").splitlines())
    expected = {COLLECTOR: COLLECTOR_PASSWORD} | {
        d.username: device_password(SECRET, d.username) for d in device_accounts(site)
    }
    assert entries.keys() == expected.keys()
    assert all(verify_password(expected[user], encoded) for user, encoded in entries.items())
    for path in second:
        assert path.stat().st_mode & 0o777 == 0o600
    grants = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert grants == [
        f"user {COLLECTOR}", "topic read jieshui/#", f"topic read {BROKER_UPTIME_TOPIC}",
        "user xinjing-6.car-wash-1",
        "topic write jieshui/changning/xinjing-6/car-wash-1/telemetry",
        "topic write jieshui/changning/xinjing-6/car-wash-1/status",
        "user tianshan-wucun.car-wash-1",
        "topic write jieshui/changning/tianshan-wucun/car-wash-1/telemetry",
        "topic write jieshui/changning/tianshan-wucun/car-wash-1/status",
    ]  # fmt: skip


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No JIESHUI_MQTT_* or JIESHUI_SITE from the caller's environment."""
    for name in list(os.environ):
        if name.startswith("JIESHUI_MQTT_") or name == "JIESHUI_SITE":
            monkeypatch.delenv(name)
    return monkeypatch


def test_command_prints_every_devices_password_for_installers(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], site: Site
) -> None:
    clean_env.setenv("JIESHUI_MQTT_DEVICE_SECRET", SECRET)
    assert main(["accounts", "--site", str(DISTRICT), "--print-passwords"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["device", "username", "password", "telemetry_topic"]
    assert rows[1:] == [
        [f"{d.community}/{d.device}", d.username, device_password(SECRET, d.username), d.telemetry_topic]
        for d in device_accounts(site)
    ]


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({}, [], "JIESHUI_MQTT_DEVICE_SECRET is not set: set it in .env or pass --device-secret"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": "CHANGE-ME-openssl-rand-hex-32"}, [],
         "JIESHUI_MQTT_DEVICE_SECRET is still the .env.example placeholder"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": "short"}, [],
         "JIESHUI_MQTT_DEVICE_SECRET is 5 characters long; it must have at least 16"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": SECRET}, [],
         "JIESHUI_MQTT_COLLECTOR_PASSWORD is not set: set it in .env or pass --collector-password"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": SECRET, "JIESHUI_MQTT_COLLECTOR_PASSWORD": "pass@word/0123456789"}, [],
         "JIESHUI_MQTT_COLLECTOR_PASSWORD may contain only letters, digits and . _ ~ -"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": SECRET, "JIESHUI_MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD},
         ["--collector-user", "xinjing-6.car-wash-1"], "is the user name of a device"),
        ({"JIESHUI_MQTT_DEVICE_SECRET": SECRET, "JIESHUI_MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD},
         ["--owner", "mosquitto"], "owner 'mosquitto' must be numeric UID:GID"),
    ],
    ids=["no secret", "placeholder", "short secret", "no collector password", "password not URL-safe",
         "collector named like a device", "owner by name"],
)  # fmt: skip
def test_command_refuses_unusable_settings_with_exit_2(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    flags: list[str],
    message: str,
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    out = tmp_path / "auth"
    assert main(["accounts", "--site", str(DISTRICT), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jieshui mqtt accounts: ")
    assert message in err
    assert not (out / "passwd").exists()


def test_command_writes_the_files_from_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "JIESHUI_MQTT_DEVICE_SECRET": SECRET,
        "JIESHUI_MQTT_COLLECTOR_USER": "collector-7",
        "JIESHUI_MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD,
    }
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.mqtt_accounts", "accounts", "--site", str(DISTRICT), "--out",
         str(tmp_path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no passwords unless asked
    assert f"wrote {tmp_path}/passwd (3 accounts) and {tmp_path}/acl" in result.stderr
    users = [line.split(":", 1)[0] for line in (tmp_path / "passwd").read_text(encoding="utf-8").splitlines()]
    assert users == ["collector-7", "xinjing-6.car-wash-1", "tianshan-wucun.car-wash-1"]
    assert "user collector-7\ntopic read jieshui/#\n" in (tmp_path / "acl").read_text(encoding="utf-8")


def test_every_mqtt_device_gets_an_account(site: Site) -> None:
    mqtt_devices = [
        (c.id, d.id) for _, c in site.communities() for _, d in c.devices() if isinstance(d.connection, Mqtt)
    ]
    assert [(d.community, d.device) for d in device_accounts(site)] == mqtt_devices
    assert len({d.username for d in device_accounts(site)}) == len(mqtt_devices) == 2
