"""A device that stops answering does not slow the others: their cycle time stays within 10% (with a
2 ms floor for timer noise on a shared 2-core machine) and they miss no slot."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from jieshui.services import InfluxServer, MosquittoServer
from simulators.runner import start_live
from store.influx import InfluxConfig, InfluxStore
from tests.collector.conftest import CollectorProcess
from tests.simulators.conftest import make_site

HEALTHY = ("rw-controller", "rw-makeup-meter", "river-pump-1", "rw-controller-b")
SILENT = "master-meter"


def _run(
    tmp_path: Path,
    influx: InfluxServer,
    broker: MosquittoServer,
    database: str,
    faults: dict[str, list[dict[str, object]]],
) -> tuple[dict[str, float], dict[str, int]]:
    site = make_site(tmp_path / database, "tcp", faults=faults)
    sim = start_live(site, speed=1e-9, broker=None, work_dir=tmp_path / database / "sim")
    collector = CollectorProcess(site, tmp_path / database / "collector", influx.url, broker.url, database)
    cycles: dict[str, list[float]] = {d: [] for d in HEALTHY}
    try:
        collector.start()
        time.sleep(1.5)
        start = time.time_ns()
        for _ in range(16):
            text = collector.metrics()
            for device in HEALTHY:
                m = re.search(rf'jieshui_device_cycle_seconds{{device="xinjing-6/{device}"}} (\S+)', text)
                assert m, device
                cycles[device].append(float(m.group(1)))
            time.sleep(0.25)
        end = time.time_ns()
        collector.wait_drained()
        collector.stop()
    finally:
        sim.stop()
        collector.stop()
    counts: dict[str, int] = {}
    with InfluxStore(InfluxConfig(url=influx.url, database=database)) as store:
        for device in HEALTHY:
            kind = (
                "water_meter"
                if "meter" in device
                else ("river_pump" if "pump" in device else "rainwater_system")
            )
            (series,) = store.query(
                f'SELECT count(raw_sha256) FROM "{kind}" WHERE device = $d AND time >= $a AND time < $b',
                params={"d": device, "a": start, "b": end},
            )
            counts[device] = int(series.values("count")[0])
        store.execute(f'DROP DATABASE "{database}"')
    return {d: statistics.median(v) for d, v in cycles.items()}, counts


def test_a_silent_device_does_not_slow_the_others(
    tmp_path: Path, influx_server: InfluxServer, mosquitto_server: MosquittoServer
) -> None:
    calm, calm_counts = _run(tmp_path, influx_server, mosquitto_server, "t_iso_calm", {})
    faulty, faulty_counts = _run(
        tmp_path, influx_server, mosquitto_server, "t_iso_silent", {SILENT: [{"kind": "dropout"}]}
    )
    for device in HEALTHY:
        assert faulty[device] <= max(calm[device] * 1.10, calm[device] + 0.002), (
            device,
            calm[device],
            faulty[device],
        )
        # 0.5 s polls over ~4 s: the same slots with and without the silent neighbour (+-1 at the edges)
        assert abs(faulty_counts[device] - calm_counts[device]) <= 1, (device, calm_counts, faulty_counts)
        assert calm_counts[device] >= 7
