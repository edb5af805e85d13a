"""Secrets never reach a log: the whole system runs for some seconds at DEBUG, on real servers with
their authentication on, is used with the right credentials and with wrong ones, and then every line
any process wrote is searched for every secret.

The system: an influxd with authentication on (and its HTTP access log on), mosquitto with the shipped
configuration (an account per device, the ACL, connection messages and every log type), the
simulators (`jieshui simulate`, each MQTT device logging in with the password derived from the device
secret), the collector (`jieshui collect`, its broker password in its `--mqtt-url`, InfluxDB's in the
environment) and the API (`jieshui api`, InfluxDB's credentials in its `--influx-url`), keys made with
`jieshui keys create`. Each process of ours logs at DEBUG. The API is called with keys (X-API-Key and
as bearer), a token from POST /auth/token (both grant types) and then the token; and wrongly: a wrong
secret for a real key id, a made-up token, a wrong secret to POST /auth/token, a key in the query
string (a client's mistake: the access log records the URL). The broker is sent a wrong device password
and a wrong collector password; `jieshui verify` is run with a wrong InfluxDB password.

The secrets: InfluxDB's password (also URL-encoded, and base64 of `user:password` as HTTP Basic sends
it), the MQTT device secret and every derived device password, the collector's broker password (also
URL-encoded), the API keys (whole, and their secret part), the tokens (whole and secret part), and
the wrong ones sent. None may appear in the servers' logs, the processes' stdout or stderr (but the
stdout of `jieshui keys create`, whose purpose is to print the key once).

`test_a_refused_command_line_names_no_credentials`: a command line refused for a bad setting prints
why, and must not print the password of a URL it names.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from jieshui.inventory import Site
from jieshui.mqtt_accounts import DEVICE_SECRET_ENV, device_accounts, device_password, write_accounts
from jieshui.services import InfluxServer, free_port
from store.influx import InfluxConfig, InfluxStore
from tests.deploy.test_mosquitto_acl import ShippedMosquitto
from tests.simulators.conftest import make_site

ROOT = Path(__file__).parents[2]
COMMUNITY = "xinjing-6"
INFLUX_USER = "jieshui-logs"
COLLECTOR_USER = "jieshui-collector"
DATABASE = "jieshui"
#: A process of ours run with logging at DEBUG (the commands that do not set logging up themselves).
DEBUG_WRAPPER = (
    "import sys; from jieshui.logs import configure_logging; configure_logging('DEBUG'); "
    "from jieshui.cli import main; sys.exit(main(sys.argv[1:]))"
)
WAIT_S = 30.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class LoggingInflux(InfluxServer):
    """influxd with its HTTP access log on (every request's URL: a password sent as `p=` would show)."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        assert text.count("\n  log-enabled = false\n") == 1, text
        text = text.replace("\n  log-enabled = false\n", "\n  log-enabled = true\n")
        self.config_path.write_text(text.replace('level = "warn"', 'level = "info"'))


class VerboseMosquitto(ShippedMosquitto):
    """The shipped configuration, logging everything it can."""

    def _write_config(self) -> None:
        super()._write_config()
        with self.config_path.open("a") as f:
            f.write("log_type all\n")


@dataclass
class Proc:
    """A process of the system, its stdout and stderr in files."""

    name: str
    args: list[str]
    env: dict[str, str]
    work: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.work / f"{self.name}.stdout"

    @property
    def err(self) -> Path:
        return self.work / f"{self.name}.stderr"

    def start(self) -> Proc:
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env}, start_new_session=True,
            )  # fmt: skip
        return self

    def wait_for_output(self, pattern: str, timeout_s: float = WAIT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(pattern, self.out.read_text(errors="replace"))
            if match:
                return match
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{self.name}: no {pattern!r} in its output; stderr:\n{self.err.read_text()[-3000:]}")

    def finish(self, timeout_s: float = 60) -> int:
        """Wait for a command that ends by itself."""
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(
    what: str, condition: Callable[[], bool], timeout_s: float = WAIT_S, watch: tuple[Proc, ...] = ()
) -> None:
    """Until `condition()`; fails at once, with its stderr, when a process in `watch` has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in watch:
            assert p.proc is not None
            if p.proc.poll() is not None:
                pytest.fail(
                    f"{p.name} exited ({p.proc.returncode}) while waiting for {what}:\n{p.err.read_text()[-3000:]}"
                )
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def metric(text: str, name: str) -> float:
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


def mqtt_connack(port: int, username: str, password: str) -> int:
    """Connect with these credentials; the CONNACK's reason code (0: accepted)."""
    done: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{secrets.token_hex(4)}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: done.append(int(reason.value))
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    wait_until("a CONNACK", lambda: bool(done), 10)
    client.loop_stop()
    client.disconnect()
    return done[0]


@dataclass
class Run:
    """What ran, what it wrote and which secrets it was given."""

    secrets: dict[str, str] = field(default_factory=dict)  # what -> the secret text
    logs: dict[str, Path] = field(default_factory=dict)  # what -> a file some process wrote
    api_log: str = ""

    def secret(self, what: str, value: str) -> str:
        self.secrets[what] = value
        return value

    def needles(self) -> dict[str, str]:
        """Every form in which a secret could show: as it is, URL-encoded, and base64 of `user:secret`
        for the passwords HTTP Basic carries."""
        out: dict[str, str] = {}
        for what, value in self.secrets.items():
            out[what] = value
            if quote(value, safe="") != value:
                out[f"{what} (URL-encoded)"] = quote(value, safe="")
        for user, what in ((INFLUX_USER, "influx password"), (INFLUX_USER, "wrong influx password")):
            out[f"{what} (HTTP Basic)"] = _b64(f"{user}:{self.secrets[what]}")
        return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    work = tmp_path_factory.mktemp("secrets-in-logs")
    r = Run()
    site: Site = make_site(work / "site", "tcp")
    site_file = work / "site.yaml"
    site_file.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")

    # -- the servers, authentication on ----------------------------------------------------------------
    r.secret("influx password", f"{secrets.token_urlsafe(18)}@/+{secrets.token_hex(4)}")
    influx = LoggingInflux(work / "influxd", auth=True)
    broker = VerboseMosquitto(work / "mosquitto", work / "mqtt-auth")
    procs: list[Proc] = []
    try:
        return _run(r, work, site, site_file, influx, broker, procs)
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGINT)
        broker.stop()
        influx.stop()


def _run(
    r: Run,
    work: Path,
    site: Site,
    site_file: Path,
    influx: InfluxServer,
    broker: VerboseMosquitto,
    procs: list[Proc],
) -> Run:
    influx_password = r.secrets["influx password"]
    influx.start()
    created = httpx.post(
        f"{influx.url}/query",
        data={"q": f"CREATE USER \"{INFLUX_USER}\" WITH PASSWORD '{influx_password}' WITH ALL PRIVILEGES"},
    )
    created.raise_for_status()
    device_secret = r.secret("MQTT device secret", secrets.token_hex(32))
    collector_password = r.secret("collector's MQTT password", secrets.token_hex(24))
    accounts = device_accounts(site)
    assert accounts, "no MQTT device"
    for account in accounts:
        r.secret(f"device password of {account.username}", device_password(device_secret, account.username))
    write_accounts(
        site, work / "mqtt-auth", device_secret=device_secret, collector_user=COLLECTOR_USER,
        collector_password=collector_password,
    )  # fmt: skip
    broker.start()
    r.logs |= {"influxd log": influx.log_path, "mosquitto log": broker.log_path}
    influx_url = f"http://127.0.0.1:{influx.port}"
    with InfluxStore(
        InfluxConfig(url=influx_url, database=DATABASE, username=INFLUX_USER, password=influx_password)
    ) as store:
        store.bootstrap()

    def proc(name: str, args: list[str], env: dict[str, str] | None = None, *, debug: bool = False) -> Proc:
        command = [sys.executable, "-c", DEBUG_WRAPPER] if debug else [sys.executable, "-m", "jieshui.cli"]
        p = Proc(name, [*command, *args], {"JIESHUI_LOG_LEVEL": "DEBUG", **(env or {})}, work)
        procs.append(p)
        r.logs[f"{name} stderr"] = p.err
        if not name.startswith("keys create"):  # printing the key once is what that command is for
            r.logs[f"{name} stdout"] = p.out
        return p

    # -- keys, on the command line ---------------------------------------------------------------------
    db_url = f"sqlite:///{work}/api.sqlite3"
    makers = [
        proc("keys create admin", ["keys", "create", "--role", "admin", "--label", "admin", "--db-url", db_url]),
        proc("keys create manager", ["keys", "create", "--role", "manager", "--community", COMMUNITY,
                                     "--label", "manager", "--site", str(site_file), "--db-url", db_url]),
    ]  # fmt: skip
    for maker in makers:  # one after the other: both migrate the new database
        maker.start()
        assert maker.finish() == 0, maker.err.read_text()
    admin_key = r.secret("admin key", makers[0].out.read_text().strip())
    manager_key = r.secret("manager key", makers[1].out.read_text().strip())
    for who, key in (("admin", admin_key), ("manager", manager_key)):
        assert key.startswith("jsk_")
        r.secret(f"{who} key's secret part", key.split("_", 2)[2])

    # -- the system ------------------------------------------------------------------------------------
    simulators = proc(
        "simulate",
        ["simulate", "--site", str(site_file), "--mqtt-url", f"mqtt://127.0.0.1:{broker.port}",
         "--speed", "60", "--start", "2025-07-15T09:00:00+08:00", "--var", str(work / "sim")],
        {DEVICE_SECRET_ENV: device_secret},
        debug=True,
    ).start()  # fmt: skip
    simulators.wait_for_output(r"simulating at")
    collector_url = f"mqtt://{COLLECTOR_USER}:{collector_password}@127.0.0.1:{broker.port}"
    collector = proc(
        "collect",
        ["collect", "--site", str(site_file), "--collector-id", "c1", "--buffer", str(work / "buffer.sqlite3"),
         "--health-port", "0", "--mqtt-url", collector_url, "--poll-interval", "0.5",
         "--influx-url", influx_url, "--influx-database", DATABASE],
        {"JIESHUI_INFLUX_USERNAME": INFLUX_USER, "JIESHUI_INFLUX_PASSWORD": influx_password,
         "JIESHUI_FLUSH_INTERVAL_S": "0.2"},
    ).start()  # fmt: skip
    health = collector.wait_for_output(r"health on (http://\S+)/healthz").group(1)
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    api_influx = f"http://{INFLUX_USER}:{quote(influx_password, safe='')}@127.0.0.1:{influx.port}"
    api = proc(
        "api",
        ["api", "--site", str(site_file), "--host", "127.0.0.1", "--port", str(api_port), "--db-url", db_url,
         "--influx-url", api_influx, "--influx-database", DATABASE],
    ).start()  # fmt: skip

    # the collector stores readings of both kinds of device
    def flowing() -> bool:
        text = httpx.get(f"{health}/metrics", timeout=5).text
        mqtt_in = metric(text, "jieshui_readings_in_total") - _source(text, "modbus")
        return (
            _source(text, "modbus") > 0 and mqtt_in > 0 and metric(text, "jieshui_points_written_total") > 0
        )

    system = (simulators, collector, api)
    wait_until("readings from Modbus and MQTT devices written", flowing, watch=system)
    wait_until("the API", lambda: httpx.get(f"{api_url}/healthz", timeout=5).status_code == 200, watch=system)

    # -- the API, rightly and wrongly ------------------------------------------------------------------
    with httpx.Client(base_url=api_url, timeout=30) as http:
        assert http.get("/me", headers={"X-API-Key": admin_key}).json()["role"] == "admin"
        bearer = {"Authorization": f"Bearer {manager_key}"}
        assert http.get(f"/communities/{COMMUNITY}/status", headers=bearer).status_code == 200
        issued = http.post(
            "/auth/token", data={"grant_type": "client_credentials", "client_secret": admin_key}
        )
        token = r.secret("admin's bearer token", issued.json()["access_token"])
        r.secret("admin's bearer token's secret part", token.removeprefix("jst_"))
        with_token = {"Authorization": f"Bearer {token}"}
        assert http.get("/me", headers=with_token).json()["role"] == "admin"
        assert http.get("/alerts", headers=with_token).status_code == 200
        password_grant = http.post(
            "/auth/token", data={"grant_type": "password", "username": "manager", "password": manager_key}
        )
        token2 = r.secret("manager's bearer token", password_grant.json()["access_token"])
        assert http.get("/me", headers={"Authorization": f"Bearer {token2}"}).status_code == 200
        admin_id = admin_key.split("_")[1]
        wrong_secret = r.secret("a wrong secret for the admin key", secrets.token_urlsafe(32))
        wrong = [
            http.get("/me", headers={"X-API-Key": f"jsk_{admin_id}_{wrong_secret}"}),
            http.get("/me", headers={"Authorization": f"Bearer jst_{r.secret('a made-up token', secrets.token_urlsafe(32))}"}),
            http.post("/auth/token", data={"grant_type": "client_credentials",
                                           "client_secret": r.secret("a wrong key", f"jsk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}")}),
            http.get("/me", params={"api_key": admin_key}),  # no header: 401, but the URL is in the access log
        ]  # fmt: skip
        assert [w.status_code for w in wrong] == [401] * 4

    # -- the broker and InfluxDB, wrongly --------------------------------------------------------------
    first = accounts[0].username
    assert mqtt_connack(broker.port, first, r.secret("a wrong device password", secrets.token_hex(12))) != 0
    assert mqtt_connack(broker.port, COLLECTOR_USER, r.secret("a wrong collector password", secrets.token_hex(16))) != 0  # fmt: skip
    assert mqtt_connack(broker.port, first, device_password(device_secret, first)) == 0
    refused = proc(
        "verify (wrong InfluxDB password)",
        ["verify", "--site", str(site_file), "--community", COMMUNITY, "--year", "2025",
         "--influx-url", influx_url, "--influx-database", DATABASE],
        {"JIESHUI_INFLUX_USERNAME": INFLUX_USER,
         "JIESHUI_INFLUX_PASSWORD": r.secret("wrong influx password", secrets.token_urlsafe(18))},
        debug=True,
    ).start()  # fmt: skip
    assert refused.finish() != 0
    assert "refused the credentials" in refused.err.read_text()
    # a few more seconds of the system at work
    written = metric(httpx.get(f"{health}/metrics", timeout=5).text, "jieshui_points_written_total")
    wait_until(
        "more points written",
        lambda: (
            metric(httpx.get(f"{health}/metrics", timeout=5).text, "jieshui_points_written_total") > written
        ),
        watch=system,
    )
    for p in reversed(procs):  # stopped before their logs are read: what they say on the way out counts
        p.stop(signal.SIGINT)
    r.api_log = api.err.read_text(errors="replace") + api.out.read_text(errors="replace")
    return r


def _source(text: str, source: str) -> float:
    match = re.search(rf'^jieshui_readings_in_total{{source="{source}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_the_logs_are_those_of_a_system_at_work(run: Run) -> None:
    """The search below looks at real logs: DEBUG lines, the requests, the refusals."""
    texts = {what: path.read_text(errors="replace") for what, path in run.logs.items()}
    assert " DEBUG " in texts["collect stderr"]
    assert " DEBUG " in texts["simulate stderr"]
    assert "DEBUG" in run.api_log
    assert re.search(r'"GET /me HTTP/1.1" 401', run.api_log), run.api_log[-2000:]
    assert '"POST /auth/token HTTP/1.1" 200' in run.api_log
    assert "/me?api_key=" in run.api_log  # the key itself is masked (below)
    assert "not authorised" in texts["mosquitto log"].lower()
    assert COLLECTOR_USER in texts["mosquitto log"]
    assert "/write" in texts["influxd log"]


def test_no_secret_is_in_any_log(run: Run) -> None:
    found = []
    for what, path in run.logs.items():
        text = path.read_text(errors="replace")
        for secret, needle in run.needles().items():
            at = text.find(needle)
            if at >= 0:
                found.append(f"{secret} in {what} ({path}): ...{text[max(0, at - 120) : at + 40]!r}...")
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["collect", "--site", "examples/community.yaml", "--mqtt-url", "mqtt://user:{secret}@127.0.0.1:port"], {}),
        (["verify", "--site", "examples/community.yaml", "--community", COMMUNITY, "--year", "2025"],
         {"JIESHUI_INFLUX_URL": "http://user:{secret}@127.0.0.1:1"}),
    ],
    ids=["MQTT URL with a bad port", "InfluxDB URL of no server"],
)  # fmt: skip
def test_a_refused_command_line_names_no_credentials(command: list[str], env: dict[str, str]) -> None:
    secret = secrets.token_hex(16)
    done = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", *(a.replace("{secret}", secret) for a in command)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **{k: v.replace("{secret}", secret) for k, v in env.items()}},
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip(), "the command said nothing"
    assert secret not in done.stdout + done.stderr, done.stderr


# --- the masking itself (jieshui/logs.py), in process ------------------------------------------------

SECRET = "s3cr3t-" + "Xy9" * 8


@pytest.mark.parametrize(
    "text",
    [
        f"MQTT broker mqtt://jieshui-collector:{SECRET}@broker:1883 refused",
        f"InfluxDB unreachable (http://admin:{quote(SECRET, safe='')}@influx:8086/query)",
        f'127.0.0.1:5000 - "GET /me?api_key=jsk_0123456789ab_{SECRET} HTTP/1.1" 401',
        f"X-API-Key: jsk_0123456789ab_{SECRET}",
        f"Authorization: Bearer jst_{SECRET}",
        f'127.0.0.1:5000 - "GET /display/jsd_{SECRET}/data?lang=en HTTP/1.1" 200',  # a display page's link
        f"Authorization: Basic {_b64('admin:' + SECRET)}",
        f"Authorization: Token {SECRET}",
        f"POST /query?u=admin&p={SECRET}&q=SHOW+DATABASES",
        f"grant_type=client_credentials&client_secret={SECRET}",
        f'{{"username": "admin", "password": "{SECRET}"}}',
    ],
)
def test_each_kind_of_secret_is_masked(text: str) -> None:
    from jieshui.logs import redact

    masked = redact(text)
    assert SECRET not in masked
    assert quote(SECRET, safe="") not in masked
    assert "***" in masked


@pytest.mark.parametrize(
    "text",
    [
        '127.0.0.1:5000 - "GET /communities/xinjing-6/status HTTP/1.1" 200',
        "WWW-Authenticate: Bearer",
        "the access token has expired; request a new one",
        "MQTT broker 127.0.0.1: session resumed; http://127.0.0.1:8086/write?db=jieshui&precision=ns",
        "key 0123456789ab: role admin",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    from jieshui.logs import redact

    assert redact(text) == text


def test_every_record_is_masked_whichever_handler_writes_it(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn's access log has its own handler and a formatter that reads the record's arguments."""
    import logging

    from uvicorn.logging import AccessFormatter

    from jieshui.logs import add_secret, configure_logging

    configure_logging("DEBUG", as_json=True)
    add_secret(SECRET)
    access = logging.getLogger("test.uvicorn.access")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    access.addHandler(handler)
    access.propagate = False
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/me?api_key=jsk_0123456789ab_{SECRET}", "1.1", 401)  # fmt: skip
    ours = logging.getLogger("test.ours")
    ours.warning("store error: %s", ValueError(f"unreachable (http://u:{SECRET}@h:8086/query)"))
    ours.info("the device secret is %s", SECRET)  # masked by value (add_secret)
    try:
        raise RuntimeError(f"cannot connect to mqtt://u:{SECRET}@h:1883")
    except RuntimeError:
        ours.exception("failed")
    out, err = capsys.readouterr()
    access.removeHandler(handler)
    configure_logging("INFO")
    assert '127.0.0.1:5000 - "GET /me?api_key=*** HTTP/1.1" 401' in out
    assert SECRET not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert "http://u:***@h:8086/query" in lines[0]
    assert "the device secret is ***" in lines[1]
    assert "mqtt://u:***@h:1883" in lines[2]


def test_the_secrets_of_the_environment() -> None:
    from jieshui.logs import secrets_from_environment

    env = {
        "JIESHUI_INFLUX_PASSWORD": "influx-pw-123",
        "JIESHUI_MQTT_DEVICE_SECRET": "device-secret-456",
        "JIESHUI_MQTT_URL": "mqtt://collector:coll%40pw-789@broker:1883",
        "JIESHUI_DB_URL": "sqlite:///var/jieshui.sqlite3",
        "JIESHUI_INFLUX_URL": "http://[bad",
        "HOME": "/root",
    }
    assert secrets_from_environment(env.items()) == {"influx-pw-123", "device-secret-456", "coll@pw-789"}
