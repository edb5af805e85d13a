"""InfluxDB answering with errors (credentials no longer valid, the database dropped) and answering
slowly: the collector keeps every reading in its buffer, retries, and stores each once when InfluxDB
is usable again, without being restarted."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import COLLECTOR_PASSWORD, COLLECTOR_USER, DATABASE, FaultRig, cycles, metric


@pytest.mark.parametrize("rig", [{"influx_auth": True}], indirect=True)
def test_credentials_refused(rig: FaultRig) -> None:
    for _ in cycles():
        # an administrator rotates the collector's password before its configuration is updated
        rig.influx_query(f"SET PASSWORD FOR {COLLECTOR_USER} = 'rotated-elsewhere'")
        rig.wait_until(lambda: rig.collector.health()["writes_failing"] is True, "writes are refused")
        health = rig.collector.health()
        assert "InfluxDB refused the credentials (user 'collector')" in str(health["last_write_error"])
        assert health["status"] == "degraded"
        time.sleep(1.0)
        failing = rig.collector.metrics()
        assert metric(failing, "jieshui_write_errors_total", kind="StoreAuthError") > 0
        assert metric(failing, "jieshui_buffer_depth") > 0
        rig.influx_query(f"SET PASSWORD FOR {COLLECTOR_USER} = '{COLLECTOR_PASSWORD}'")
        rig.wait_writing()
    rig.finish()
    assert "InfluxDB write failed (StoreAuthError)" in rig.log()
    assert COLLECTOR_PASSWORD not in rig.log()


def test_database_dropped(rig: FaultRig) -> None:
    for _ in cycles():
        # hold the collector's link so nothing lands while InfluxDB's content is read and dropped
        rig.influx_proxy.set("hold")
        time.sleep(1.0)
        with rig.store() as store:
            rig.truth.gather(store)  # what the drop takes away was stored: counted as stored
        rig.influx_query(f'DROP DATABASE "{DATABASE}"')
        rig.influx_proxy.set("pass")
        rig.wait_until(lambda: metric(rig.collector.metrics(), "jieshui_write_errors_total",
                                      kind="database_not_found") > 0, "the collector notices")  # fmt: skip
        rig.wait_writing()
    rig.finish()
    assert "InfluxDB write failed (database_not_found)" in rig.log()
    with rig.store() as store:  # the inventory facts dashboards need are written again
        (info,) = store.query("SELECT count(profile) FROM device_info")
        assert info.values("count")[0] >= rig.device_count()


def test_slow_answers(rig: FaultRig) -> None:
    for _ in cycles():
        rig.influx_proxy.set("delay", delay_s=0.4)  # slow but within the timeout: writes go on
        rig.wait_writing()
        rig.influx_proxy.set("delay", delay_s=3.0)  # slower than JIESHUI_INFLUX_TIMEOUT_S=2
        rig.wait_until(lambda: metric(rig.collector.metrics(), "jieshui_write_errors_total",
                                      kind="StoreTimeoutError") > 0, "writes time out")  # fmt: skip
        slow = rig.collector.metrics()
        assert metric(slow, "jieshui_write_seconds_sum") > 0.4
        rig.influx_proxy.set("pass")
        rig.wait_writing()
    rig.finish()
    assert "InfluxDB write failed (StoreTimeoutError)" in rig.log()
