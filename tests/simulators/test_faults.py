"""Fault injection: each configured fault changes what the device shows or how it answers, as said."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jieshui.faults import FaultSpecError, parse_fault_option
from jieshui.inventory import ModbusTcp, Site
from jieshui.services import MosquittoServer
from jieshui.settings import parse_mqtt_url
from simulators.model import SHANGHAI, SiteModel
from simulators.runner import start_live, with_faults
from tests.simulators.conftest import MORNING, make_site
from tests.simulators.test_modbus_face import FROZEN_AT, mbpoll


def _series(
    site: Site, device: str, quantity: str, days: int, start: dt.date = dt.date(2025, 7, 1)
) -> np.ndarray:
    model = SiteModel(site, seed=2)
    out = []
    for i in range(days):
        for day in model.day(start + dt.timedelta(days=i)):
            if day.device == device:
                out.append(np.asarray(day.values[quantity], dtype=float))
    return np.concatenate(out)


def _at(day: int, hour: int = 0) -> str:
    return dt.datetime(2025, 7, 1 + day, hour, tzinfo=SHANGHAI).isoformat()


def _with(tmp_path: Path, device: str, fault: dict[str, object]) -> Site:
    return make_site(tmp_path, "tcp", faults={device: [fault]})


def test_stuck_meter_freezes_from_its_start(tmp_path: Path) -> None:
    site = _with(tmp_path, "master-meter", {"kind": "stuck", "quantity": "volume_m3", "start": _at(1)})
    clean = _series(make_site(tmp_path, "tcp"), "master-meter", "volume_m3", 3)
    stuck = _series(site, "master-meter", "volume_m3", 3)
    first_day = 1440
    np.testing.assert_array_equal(stuck[: first_day - 1], clean[: first_day - 1])
    assert len(set(stuck[first_day - 1 :].tolist())) == 1  # frozen from 00:00 of day 2 on
    assert clean[-1] > clean[first_day]  # while water kept flowing


def test_spike_changes_exactly_one_reading(tmp_path: Path) -> None:
    site = _with(
        tmp_path,
        "rw-controller",
        {"kind": "spike", "quantity": "level_pct", "start": _at(1, 12), "factor": 50},
    )
    clean = _series(make_site(tmp_path, "tcp"), "rw-controller", "level_pct", 3)
    spiked = _series(site, "rw-controller", "level_pct", 3)
    changed = np.flatnonzero(clean != spiked)
    assert changed.tolist() == [1440 + 12 * 60 - 1]  # the reading stamped 12:00 of day 2


def test_reset_restarts_the_totalizer_once(tmp_path: Path) -> None:
    site = _with(tmp_path, "master-meter", {"kind": "reset", "quantity": "volume_m3", "start": _at(1)})
    shown = _series(site, "master-meter", "volume_m3", 3)
    drops = np.flatnonzero(np.diff(shown) < 0)
    assert len(drops) == 1
    assert shown[drops[0] + 1] < 1.0  # the new meter starts from 0


def test_rollover_wraps_the_register_once(tmp_path: Path) -> None:
    # lq-rhc10's supply counter is 16-bit in 0.1 m3: it wraps at 6553.6 m3.
    site = _with(
        tmp_path, "rw-controller-b", {"kind": "rollover", "quantity": "supply_m3", "before_wrap": 30}
    )
    shown = _series(site, "rw-controller-b", "supply_m3", 20)
    assert shown[0] == pytest.approx(6553.6 - 3.0, abs=0.11)
    drops = np.flatnonzero(np.diff(shown) < 0)
    assert len(drops) == 1
    assert shown[drops[0]] > 6540
    assert shown[drops[0] + 1] < 10
    assert shown.max() < 6553.6


def test_tamper_inflates_the_reported_growth(tmp_path: Path) -> None:
    site = _with(
        tmp_path, "river-pump-1", {"kind": "tamper", "quantity": "volume_m3", "start": _at(0), "factor": 2.0}
    )
    clean = _series(make_site(tmp_path, "tcp"), "river-pump-1", "volume_m3", 10)
    tampered = _series(site, "river-pump-1", "volume_m3", 10)
    grown_clean = clean[-1] - clean[0]
    assert grown_clean > 0
    assert tampered[-1] - tampered[0] == pytest.approx(2 * grown_clean, rel=0.01)


def test_exception_fault_answers_with_that_exception_code(tmp_path: Path) -> None:
    site = _with(tmp_path, "master-meter", {"kind": "exception", "code": 6})
    sim = start_live(site, speed=1e-9, broker=None, work_dir=tmp_path, start_ns=FROZEN_AT)
    try:
        conn = next(
            d.connection for _, d in site.communities().__next__()[1].devices() if d.id == "master-meter"
        )
        other = next(
            d.connection for _, d in site.communities().__next__()[1].devices() if d.id == "rw-makeup-meter"
        )
        assert isinstance(conn, ModbusTcp)
        assert isinstance(other, ModbusTcp)
        bad = mbpoll(conn, "holding", 0, 2)
        good = mbpoll(other, "holding", 0, 2)
    finally:
        sim.stop()
    assert bad.returncode != 0
    assert "Slave device or server is busy" in bad.stderr
    assert good.returncode == 0  # the other unit behind the same gateway still answers


def test_dropout_and_slow_devices_miss_the_client_timeout(tmp_path: Path) -> None:
    faults = {"master-meter": [{"kind": "dropout"}], "rw-makeup-meter": [{"kind": "slow", "delay_s": 3}]}
    site = make_site(tmp_path, "tcp", faults=faults)
    sim = start_live(site, speed=1e-9, broker=None, work_dir=tmp_path, start_ns=FROZEN_AT)
    try:
        devices = {d.id: d.connection for _, d in site.communities().__next__()[1].devices()}
        silent = mbpoll(devices["master-meter"], "holding", 0, 2, timeout_s=0.5)  # type: ignore[arg-type]
        slow = mbpoll(devices["rw-makeup-meter"], "holding", 0, 2, timeout_s=0.5)  # type: ignore[arg-type]
        patient = mbpoll(devices["rw-makeup-meter"], "holding", 0, 2, timeout_s=5)  # type: ignore[arg-type]
    finally:
        sim.stop()
    assert "timed out" in silent.stderr.lower()
    assert "timed out" in slow.stderr.lower()
    assert patient.returncode == 0


def _collect(broker: MosquittoServer, topic: str, count: int) -> list[dict[str, object]]:
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-q", "1", "-C", str(count), "-W", "20"],
        capture_output=True, check=False, timeout=30,
    ).stdout.splitlines()  # fmt: skip
    return [json.loads(line) for line in out]


@pytest.mark.parametrize("kind", ["duplicate", "out_of_order"])
def test_message_faults_duplicate_or_reorder(
    tmp_path: Path, mosquitto_server: MosquittoServer, kind: str
) -> None:
    site = _with(tmp_path, "car-wash-1", {"kind": kind, "probability": 0.5})
    sim = start_live(site, speed=3600, seed=4, broker=parse_mqtt_url(mosquitto_server.url),
                     work_dir=tmp_path, start_ns=MORNING)  # fmt: skip
    try:
        messages = _collect(mosquitto_server, "jieshui/changning/xinjing-6/car-wash-1/telemetry", 30)
    finally:
        sim.stop()
    seqs = [int(m["seq"]) for m in messages]  # type: ignore[call-overload]
    if kind == "duplicate":
        assert len(set(seqs)) < len(seqs)
        assert seqs == sorted(seqs)
    else:
        assert len(set(seqs)) == len(seqs)
        assert seqs != sorted(seqs)


def test_clock_skew_shifts_device_timestamps(tmp_path: Path, mosquitto_server: MosquittoServer) -> None:
    site = _with(tmp_path, "car-wash-1", {"kind": "clock_skew", "seconds": 3600})
    sim = start_live(site, speed=60, broker=parse_mqtt_url(mosquitto_server.url), work_dir=tmp_path)
    try:
        before_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
        messages = _collect(mosquitto_server, "jieshui/changning/xinjing-6/car-wash-1/telemetry", 1)
    finally:
        sim.stop()
    skew_ms = float(messages[0]["ts"]) - before_ms  # type: ignore[arg-type]
    assert 3_590_000 < skew_ms < 3_620_000


def test_fault_option_parses_and_names_its_errors(tmp_path: Path) -> None:
    community, device, fault = parse_fault_option(
        "xinjing-6/master-meter:stuck:quantity=volume_m3,start=2025-07-02"
    )
    assert (community, device, fault.kind) == ("xinjing-6", "master-meter", "stuck")
    site = with_faults(make_site(tmp_path, "tcp"), [(community, device, fault)])
    meter = next(d for _, d in site.communities().__next__()[1].devices() if d.id == "master-meter")
    assert [f.kind for f in meter.faults] == ["stuck"]
    with pytest.raises(FaultSpecError, match="expected COMMUNITY/DEVICE:KIND"):
        parse_fault_option("master-meter:stuck")
    with pytest.raises(FaultSpecError, match="probability: Input should be less than or equal to 1"):
        parse_fault_option("a/b:duplicate:probability=3")
    for spec, field in (("spike:quantity=q,factor=inf", "factor"), ("clock_skew:seconds=nan", "seconds"),
                        ("tamper:quantity=q,factor=Infinity", "factor")):  # fmt: skip
        with pytest.raises(FaultSpecError, match=f"{field}: Input should be a finite number"):
            parse_fault_option(f"a/b:{spec}")
    with pytest.raises(KeyError, match="xinjing-6/nope"):
        with_faults(make_site(tmp_path, "tcp"), [("xinjing-6", "nope", fault)])
