"""`jieshui simulate` as an operator runs it: prints where each device is served, serves, stops on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from jieshui.services import MosquittoServer
from tests.simulators.conftest import make_site
from tests.simulators.test_modbus_face import mbpoll, words

ROOT = Path(__file__).parents[2]


def test_simulate_serves_modbus_and_mqtt_until_interrupted(
    tmp_path: Path, mosquitto_server: MosquittoServer
) -> None:
    site = make_site(tmp_path, "tcp")
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jieshui.cli", "simulate", "--site", str(site_file), "--speed", "3600",
         "--seed", "7", "--mqtt-url", mosquitto_server.url, "--var", str(tmp_path / "var")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("simulating at"):
                break
        output = "\n".join(lines)
        gateway = re.search(r"^modbus  127\.0\.0\.1:(\d+)  unit ids 1, 2, 3, 4, 5$", output, re.M)
        assert gateway is not None, output
        assert "mqtt    127.0.0.1:" in output
        assert "jieshui/changning/xinjing-6/car-wash-1/telemetry" in output
        assert lines[-1] == "simulating at 3600x with seed 7; Ctrl-C stops"
        meter = next(
            d.connection for _, d in next(iter(site.communities()))[1].devices() if d.id == "master-meter"
        )
        read = mbpoll(meter, "holding", 0, 5)  # type: ignore[arg-type]
        assert read.returncode == 0, read.stderr
        assert len(words(read.stdout)) == 5
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "stopping simulators" in rest


def test_simulate_without_a_site_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "simulate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--site (or JIESHUI_SITE) is required" in result.stderr
