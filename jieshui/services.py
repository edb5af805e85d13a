"""Start and stop the real servers Jieshui talks to (influxd, mosquitto) from the system's binaries.

`make demo` and the test fixtures use the same launcher, so what the tests exercise is what the demo
runs: a config file written into a data directory, the server on a free loopback port, a readiness
probe, and a clean stop (SIGTERM, then SIGKILL if it lingers). The servers run in their own session so
a Ctrl-C in the terminal reaches only our process, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from jieshui.errors import ServiceError
from jieshui.tls import server_cert_context

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

#: A server's TLS certificate and private key (PEM files); the certificate may carry its chain.
TlsFiles = tuple[str | Path, str | Path]


def _tls_paths(tls: TlsFiles | None) -> tuple[Path, Path] | None:
    """The certificate and key as absolute paths (the servers resolve relative ones elsewhere)."""
    if tls is None:
        return None
    cert, key = (Path(p).resolve() for p in tls)
    for path in (cert, key):
        if not path.is_file():
            raise ServiceError(f"TLS file {path} does not exist")
    return cert, key


def find_binary(name: str, debian_package: str) -> str:
    """Return the path of a server binary, or raise with the command that installs it."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))
    if found is None:
        raise ServiceError(
            f"{name} not found on PATH or in {', '.join(_SBIN_DIRS)}; install it with: "
            f"apt-get install {debian_package} (make test and make demo run scripts/bootstrap.sh, which does)"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on `host` (it may be taken again before use; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class _Server:
    """A server process with a data directory, a log file and a readiness probe."""

    name = "server"
    debian_package = ""
    binary = ""
    uses_port = True

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.requested_port = port
        self.port = port or 0
        self.log_path = self.data_dir / f"{self.name}.log"
        self.config_path = self.data_dir / f"{self.name}.conf"
        self.process: subprocess.Popen[bytes] | None = None

    # -- subclass hooks -------------------------------------------------------------------------
    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self, binary: str) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """Where the server listens, for messages."""
        return f"{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server and wait until it answers; raise ServiceError with its log tail if not."""
        binary = find_binary(self.binary, self.debian_package)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_port and self.requested_port and _port_open(self.host, self.requested_port):
            # Checked first: a readiness probe would otherwise be answered by whoever holds the port.
            raise ServiceError(f"{self.name} cannot listen on {self.where}: the port is already in use")
        attempts = (
            1 if self.requested_port or not self.uses_port else 3
        )  # a free port can be taken between probe and bind
        for attempt in range(attempts):
            if not self.requested_port and self.uses_port:
                self.port = free_port(self.host)
            self._write_config()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self._command(binary),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if self._ready():
                    return
                time.sleep(0.05)
            self._terminate()
            if attempt == attempts - 1:
                raise ServiceError(
                    f"{self.name} did not become ready on {self.where} within {timeout_s:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server with SIGTERM (SIGKILL after `timeout_s`); safe to call twice."""
        self._terminate(timeout_s)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout_s: float = 20.0) -> None:
        """Start again on the same port and data directory after a stop or kill."""
        self.requested_port = self.port
        self.start(timeout_s)

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its sockets but answers nothing (timeout tests)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)
            # kill() returns before the process is stopped: wait until the kernel says it is
            # (state T), or a request sent right away may still be answered.
            stat = Path(f"/proc/{self.process.pid}/stat")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, IndexError):
                    if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                        return
                time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _terminate(self, timeout_s: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class InfluxServer(_Server):
    """Debian's influxd 1.x on a loopback port, data under `data_dir`, optionally with auth enabled.

    With `tls=(certificate, key)` the HTTP API speaks HTTPS only (`url` is then https://), and the
    readiness probe verifies that very certificate.
    """

    name = "influxd"
    binary = "influxd"
    debian_package = "influxdb"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        auth: bool = False,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(data_dir, port, host)
        self.auth = auth
        self.tls = _tls_paths(tls)
        self.rpc_port = 0

    @property
    def url(self) -> str:
        """The HTTP API's base URL (https:// with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _write_config(self) -> None:
        self.rpc_port = free_port(self.host)
        d = self.data_dir
        # Debian's 1.6 reads `reporting-enabled` (upstream's `reporting-disabled` is ignored there);
        # the monitor store would fill an `_internal` database nobody asked for.
        self.config_path.write_text(
            f"""reporting-enabled = false
bind-address = "{self.host}:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
{self._https_config()}[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
"""
        )

    def _https_config(self) -> str:
        if self.tls is None:
            return ""
        cert, key = self.tls
        return f"""  https-enabled = true
  https-certificate = "{cert}"
  https-private-key = "{key}"
"""

    def _command(self, binary: str) -> list[str]:
        return [binary, "run", "-config", str(self.config_path)]

    def _ready(self) -> bool:
        verify = server_cert_context(self.tls[0]) if self.tls else True
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5, verify=verify).status_code == 204
        except httpx.HTTPError:
            return False


class MosquittoServer(_Server):
    """Mosquitto 2 on a loopback port with persistence under `data_dir` and no queue limit.

    With `tls=(certificate, key)` its one listener speaks MQTT over TLS only (`url` is mqtts://).
    """

    name = "mosquitto"
    binary = "mosquitto"
    debian_package = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        extra_config: str = "",
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(data_dir, port, host)
        self.extra_config = extra_config
        self.tls = _tls_paths(tls)

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL (mqtts:// with TLS)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def _write_config(self) -> None:
        d = self.data_dir
        # max_queued_messages 0 = unbounded: the default of 1000 silently drops a persistent session's
        # QoS 1 messages during a longer collector outage (ARCHITECTURE.md, pitfalls). Running as root,
        # mosquitto would drop to user `mosquitto` and could not write its persistence file here.
        # autosave_on_changes with an interval of 1: saved after every change, so a broker killed keeps
        # every message it acknowledged (docs/reliability.md).
        auth = "" if "allow_anonymous" in self.extra_config else "allow_anonymous true\n"
        # mosquitto 2.0: the listener's own settings follow its `listener` line
        tls = f"certfile {self.tls[0]}\nkeyfile {self.tls[1]}\n" if self.tls else ""
        self.config_path.write_text(
            f"""listener {self.port} {self.host}
{tls}{auth}persistence true
persistence_location {d}/
autosave_on_changes true
autosave_interval 1
max_queued_messages 0
user root
log_dest stderr
log_type error
log_type warning
log_type notice
{self.extra_config}
"""
        )

    def _command(self, binary: str) -> list[str]:
        return [binary, "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return _port_open(self.host, self.port)


class SerialPtyPair(_Server):
    """Two linked pseudo-terminals from socat: a serial line between a Modbus RTU server and a client.

    `server_port` and `client_port` are stable symlinks in `data_dir`; bytes written to one are read
    from the other, as on an RS-485 pair.
    """

    name = "socat"
    binary = "socat"
    debian_package = "socat"
    uses_port = False

    def __init__(self, data_dir: Path, label: str = "serial", client_port: str | None = None) -> None:
        super().__init__(data_dir)
        # The client's end may be a path the inventory names (`serial_port`); the server's is beside it.
        self.client_port = client_port or str(self.data_dir / f"{label}-client")
        self.server_port = f"{client_port}.sim" if client_port else str(self.data_dir / f"{label}-server")
        self.log_path = self.data_dir / f"socat-{label}.log"

    @property
    def where(self) -> str:
        """The two ends of the line."""
        return f"{self.server_port} <-> {self.client_port}"

    def _write_config(self) -> None:
        """socat takes everything on its command line."""

    def _command(self, binary: str) -> list[str]:
        return [
            binary,
            "-d",
            f"pty,raw,echo=0,link={self.server_port}",
            f"pty,raw,echo=0,link={self.client_port}",
        ]

    def _ready(self) -> bool:
        return os.path.exists(self.server_port) and os.path.exists(self.client_port)
