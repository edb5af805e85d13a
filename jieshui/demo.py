"""`make demo`: the whole system on this machine, on embedded defaults, with no Docker.

It starts its own influxd and mosquitto from the system's binaries with their data under `var/demo/`,
bootstraps the database, writes a reading of the inventory's first device and reads it back through
InfluxQL, prints where everything is, and stops everything on Ctrl-C (or SIGTERM). Later stages of the
data flow (simulators, collector, API) join here as they are built.
"""

from __future__ import annotations

import fcntl
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devices.profile import find_profile
from jieshui.errors import JieshuiError
from jieshui.inventory import Site, load_site
from jieshui.services import InfluxServer, MosquittoServer
from store.influx import InfluxConfig, InfluxStore, quote_ident
from store.lineprotocol import Point

DEMO_DATABASE = "jieshui"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(site_path: Path, var_dir: Path, influx_port: int | None, mqtt_port: int | None) -> int:
    """Run the demo until interrupted; return the exit status."""
    site = load_site(site_path)
    demo_dir = var_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    lock = (demo_dir / "demo.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another `jieshui demo` is running with {demo_dir}; stop it first", file=sys.stderr)
        return 1
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored, and Python
    # then never turns Ctrl-C (or `kill -INT`) into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    influx = InfluxServer(demo_dir / "influxd", port=influx_port)
    broker = MosquittoServer(demo_dir / "mosquitto", port=mqtt_port)
    try:
        influx.start()
        broker.start()
        with InfluxStore(InfluxConfig(url=influx.url, database=DEMO_DATABASE)) as store:
            store.bootstrap()
            point = _sample_reading(site)
            line = point.to_line()
            store.write([point])
            back = store.query(
                f"SELECT * FROM {quote_ident(point.measurement)} WHERE time = $t AND device = $device",  # noqa: S608
                params={"t": point.time_ns, "device": point.tags["device"]},
            )
        print("Jieshui demo is running.", flush=True)
        print(f"  site inventory : {site_path} ({site.summary()})")
        print(f"  InfluxDB       : {influx.url}  database {DEMO_DATABASE!r}  data {influx.data_dir}")
        print(f"  MQTT broker    : {broker.url}  data {broker.data_dir}")
        print(f"  logs           : {influx.log_path}  {broker.log_path}")
        print(f"  wrote          : {line}")
        for series in back:
            fields = {k: v[0].item() if hasattr(v[0], "item") else v[0] for k, v in series.columns.items()}
            print(f"  read back      : {series.name} at {series.time[0]}Z {fields}")
        if not back:
            raise JieshuiError("the reading written to InfluxDB could not be read back")
        print("Press Ctrl-C to stop.", flush=True)
        while influx.running and broker.running:
            time.sleep(0.5)
        print("a server stopped unexpectedly; see the logs above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        broker.stop()
        influx.stop()
        print("stopped: influxd and mosquitto are down.", flush=True)
        lock.close()


def _sample_reading(site: Site) -> Point:
    """A tank-level reading of the inventory's first device, tagged as every reading is (schema.md)."""
    district, community = next(iter(site.communities()))
    _, device = next(iter(community.devices()))
    profile = find_profile(device.profile)
    point = Point(
        measurement=str(profile.kind),
        tags={
            "district": district.id,
            "community": community.id,
            "device": device.id,
            "kind": str(profile.kind),
            "collector": "demo",
            "profile": profile.ref,
        },
        fields={"level_pct": 42.5, "level_m3": 29.75},
        time_ns=time.time_ns() // 1_000_000_000 * 1_000_000_000,
    )
    return point
