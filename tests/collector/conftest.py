"""A collector run as operators run it: `jieshui collect` in its own process, killable with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from jieshui.inventory import Site

ROOT = Path(__file__).parents[2]


class CollectorProcess:
    """`jieshui collect` on a site file, with its buffer, health port and log under `work`."""

    def __init__(
        self,
        site: Site,
        work: Path,
        influx_url: str,
        mqtt_url: str,
        database: str,
        poll_interval_s: float = 0.5,
        env: dict[str, str] | None = None,
        buffer: Path | None = None,
    ):
        self.work = work
        self.env = env or {}
        self.site_file = work / "site.yaml"
        work.mkdir(parents=True, exist_ok=True)
        self.site_file.write_text(
            yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True), encoding="utf-8"
        )
        self.buffer = buffer or work / "buffer.sqlite3"
        self.args = [
            sys.executable, "-m", "jieshui.cli", "collect", "--site", str(self.site_file), "--collector-id", "c1",
            "--buffer", str(self.buffer), "--health-port", "0", "--mqtt-url", mqtt_url,
            "--poll-interval", str(poll_interval_s), "--influx-url", influx_url, "--influx-database", database,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_url = ""
        self.runs = 0

    def start(self) -> None:
        """Start and wait until it reports where its health endpoint is."""
        self.runs += 1
        log = (self.work / f"collector-{self.runs}.log").open("wb")
        env = {**os.environ, "JIESHUI_FLUSH_INTERVAL_S": "0.2", **self.env}
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.search(r"health on (http://\S+)/healthz", line)
        assert match, f"collector did not start: {line!r}; see {log.name}"
        self.health_url = match.group(1)

    def health(self) -> dict[str, object]:
        """/healthz, whatever its status code."""
        return dict(httpx.get(f"{self.health_url}/healthz", timeout=5).json())

    def metrics(self) -> str:
        """/metrics text."""
        return httpx.get(f"{self.health_url}/metrics", timeout=5).text

    def wait_for(self, condition: Callable[[dict[str, object]], bool], timeout_s: float = 30) -> None:
        """Until /healthz satisfies `condition`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.health()):
                return
            time.sleep(0.1)
        raise AssertionError(f"collector health never reached the condition: {json.dumps(self.health())}")

    def wait_drained(self, timeout_s: float = 30) -> None:
        """Until the buffer is empty."""
        self.wait_for(lambda h: h["buffer_depth"] == 0, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        """SIGINT, as Ctrl-C; return the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
