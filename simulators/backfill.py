"""History backfill: a period of the simulated world written straight into InfluxDB, plus its truth.

Each device's readings go to the measurement of its kind with the tags every reading carries
(docs/schema.md), `collector=backfill`, at the resolution of `step_s`, as the collector would have
stored them had it polled that often. The ground truth (what really flowed, per device and local day)
goes to a JSON file, so tests can compare what verification finds with what happened. Encoding and
HTTP overlap: one thread posts a batch while the next is encoded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jieshui.faults import ClockSkew, Dropout
from jieshui.inventory import Site
from simulators.model import NS, DeviceDay, SiteModel, local_midnight_ns
from store.influx import InfluxStore
from store.inventory_points import inventory_lines
from store.lineprotocol import encode_columns, series_key

BATCH_LINES = 10_000
BACKFILL_COLLECTOR = "backfill"


@dataclass
class BackfillStats:
    """What a backfill wrote."""

    days: int = 0
    points: int = 0
    devices: int = 0
    truth: dict[str, object] = field(default_factory=dict)


def _quantity_columns(day: DeviceDay) -> dict[str, np.ndarray]:
    """Columns with InfluxDB types per the profile: int quantities as ints, bools as bools."""
    cols: dict[str, np.ndarray] = {}
    for q in day.profile.quantities:
        values = day.values[q.name]
        if q.type == "int":
            cols[q.name] = np.asarray(values, dtype=np.float64).round().astype(np.int64)
        elif q.type == "bool":
            cols[q.name] = np.asarray(values, dtype=bool)
        elif q.type == "string":
            cols[q.name] = np.asarray(values, dtype=object)
        else:
            cols[q.name] = np.asarray(values, dtype=np.float64)
    return cols


def device_lines(site: Site, day: DeviceDay, district: str) -> list[str]:
    """Line protocol for one device-day, with the device's dropout and clock-skew faults applied."""
    _, community = site.community(day.community)
    device = next(d for _, d in community.devices() if d.id == day.device)
    keep = day.present.copy()
    time_ns = day.time_ns.copy()
    for fault in device.faults:
        if isinstance(fault, Dropout):
            start = int(fault.start.timestamp() * NS) if fault.start else np.iinfo(np.int64).min
            end = int(fault.end.timestamp() * NS) if fault.end else np.iinfo(np.int64).max
            keep &= ~((time_ns >= start) & (time_ns < end))
        elif isinstance(fault, ClockSkew) and day.profile.mqtt is not None:
            time_ns = time_ns + int(fault.seconds * NS)  # only devices that stamp their own messages
    if not keep.any():
        return []
    kind = str(day.profile.kind)
    key = series_key(
        kind,
        {
            "district": district,
            "community": day.community,
            "device": day.device,
            "kind": kind,
            "collector": BACKFILL_COLLECTOR,
            "profile": day.profile.ref,
        },
    )
    columns = {name: col[keep] for name, col in _quantity_columns(day).items()}
    return encode_columns(key, columns, time_ns[keep])


def dates(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Local dates from `start` up to, not including, `end`."""
    d = start
    while d < end:
        yield d
        d += dt.timedelta(days=1)


def backfill(
    site: Site,
    store: InfluxStore,
    start: dt.date,
    end: dt.date,
    *,
    seed: int = 1,
    step_s: int = 60,
    truth_path: Path | None = None,
) -> BackfillStats:
    """Simulate `start`..`end` (local dates, end excluded) and write every reading to `store`."""
    model = SiteModel(site, seed=seed, step_s=step_s)
    district_of = {c.id: d.id for d, c in site.communities()}
    stats = BackfillStats()
    daily: dict[str, dict[str, list[float]]] = {}
    pending: Future[None] | None = None
    # the inventory facts dashboards need (device_info, claims), stamped when the history starts;
    # not readings, so not counted in `stats.points`
    store.write_body("\n".join(inventory_lines(site, local_midnight_ns(start))).encode())
    batch: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-write") as pool:

        def flush() -> None:
            nonlocal pending, batch
            if pending is not None:
                pending.result()  # surface the previous batch's StoreError before going on
            body = "\n".join(batch).encode()
            pending = pool.submit(store.write_body, body)
            stats.points += len(batch)
            batch = []

        for date in dates(start, end):
            for day in model.day(date):
                batch.extend(device_lines(site, day, district_of[day.community]))
                per_device = daily.setdefault(f"{day.community}/{day.device}", {})
                per_device.setdefault("date", []).append(float(date.toordinal()))
                for name, value in day.truth.items():
                    per_device.setdefault(name, []).append(value)
                if len(batch) >= BATCH_LINES:
                    flush()
            stats.days += 1
        if batch:
            flush()
        if pending is not None:
            pending.result()
    stats.devices = len(daily)
    stats.truth = _truth(site, daily, start, end, seed, step_s)
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(stats.truth, indent=1, ensure_ascii=False), encoding="utf-8")
    return stats


def _truth(
    site: Site, daily: dict[str, dict[str, list[float]]], start: dt.date, end: dt.date, seed: int, step_s: int
) -> dict[str, object]:
    devices: dict[str, object] = {}
    for key, series in daily.items():
        community_id, device_id = key.split("/", 1)
        _, community = site.community(community_id)
        profile = next(d.profile for _, d in community.devices() if d.id == device_id)
        dates_iso = [dt.date.fromordinal(int(o)).isoformat() for o in series["date"]]
        quantities = {k: v for k, v in series.items() if k != "date"}
        totals = {k: float(np.sum(v)) for k, v in quantities.items() if k != "storage_m3_end"}
        devices[key] = {"profile": profile, "dates": dates_iso, "daily": quantities, "totals": totals}
    return {
        "schema": "jieshui.truth/1",
        "seed": seed,
        "step_s": step_s,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "time_zone": "Asia/Shanghai",
        "devices": devices,
    }
