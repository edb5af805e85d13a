"""The simulators' MQTT face, checked from outside with mosquitto_sub against a real mosquitto."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from devices.payload import payload_model
from jieshui.inventory import Site
from jieshui.services import MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.runner import start_live
from tests.simulators.conftest import MORNING, make_site

TOPIC = "jieshui/changning/xinjing-6/car-wash-1"


def _subscribe(broker: MosquittoServer, topic: str, count: int, wait_s: int = 20) -> list[bytes]:
    result = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-q", "1",
         "-C", str(count), "-W", str(wait_s)],
        capture_output=True, check=False, timeout=wait_s + 10,
    )  # fmt: skip
    return result.stdout.splitlines()  # bytes: a corrupted payload need not be UTF-8


def _telemetry_of_a_morning(site: Site, broker: MosquittoServer, count: int, tmp_path: Path) -> list[bytes]:
    """Run the site at 3600x from 09:00 and collect `count` car-wash messages."""
    sim = start_live(
        site, speed=3600, seed=5, broker=parse_mqtt_url(broker.url), work_dir=tmp_path, start_ns=MORNING
    )
    try:
        return _subscribe(broker, f"{TOPIC}/telemetry", count)
    finally:
        sim.stop()


def test_payloads_validate_against_the_profile_schema(
    tmp_path: Path, mosquitto_server: MosquittoServer
) -> None:
    messages = _telemetry_of_a_morning(make_site(tmp_path, "tcp"), mosquitto_server, 12, tmp_path)
    assert len(messages) == 12
    model = payload_model("wx-cw01@1")
    payloads = [model.model_validate_json(m) for m in messages]
    events = {p.event for p in payloads}  # type: ignore[attr-defined]
    assert events == {"wash", "status"}
    washes = [p for p in payloads if p.event == "wash"]  # type: ignore[attr-defined]
    assert all(0 < w.water_l < 3 for w in washes)  # type: ignore[attr-defined]  # micro-water washing
    seqs = [p.seq for p in payloads]  # type: ignore[attr-defined]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    counts = [p.wash_count for p in payloads]  # type: ignore[attr-defined]
    assert counts == sorted(counts)  # the totalizer never goes back


def test_status_is_retained_and_goes_offline_on_stop(
    tmp_path: Path, mosquitto_server: MosquittoServer
) -> None:
    site = make_site(tmp_path, "tcp")
    # the session's broker may retain an earlier test's "offline" for this device: clear it, so the first
    # status a subscriber gets is this run's (a subscriber racing the connect would otherwise read the old one)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto_server.port), "-t",
                    f"{TOPIC}/status", "-r", "-n", "-q", "1"], check=True, timeout=10)  # fmt: skip
    sim = start_live(site, speed=60, seed=5, broker=parse_mqtt_url(mosquitto_server.url), work_dir=tmp_path)
    try:
        # A subscriber arriving after the announcement still gets it: it is retained.
        online = _subscribe(mosquitto_server, f"{TOPIC}/status", 1, wait_s=5)
    finally:
        sim.stop()
    assert [json.loads(m)["online"] for m in online] == [True]
    offline = _subscribe(mosquitto_server, f"{TOPIC}/status", 1, wait_s=5)
    assert [json.loads(m)["online"] for m in offline] == [False]


def test_malformed_fault_publishes_payloads_the_schema_refuses(
    tmp_path: Path, mosquitto_server: MosquittoServer
) -> None:
    site = make_site(tmp_path, "tcp", faults={"car-wash-1": [{"kind": "malformed", "probability": 1.0}]})
    messages = _telemetry_of_a_morning(site, mosquitto_server, 8, tmp_path)
    assert len(messages) == 8
    model = payload_model("wx-cw01@1")
    for message in messages:
        with pytest.raises(ValidationError):
            model.model_validate_json(message)
