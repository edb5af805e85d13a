"""The live simulated world: the site model advanced on a simulated clock, read by the device faces.

`SimClock` maps wall time to simulated time (`--speed 3600`: one simulated hour per second). `LiveWorld`
produces the model's days as the simulated clock reaches them (thread-safe: Modbus servers and MQTT
publishers read it from their own threads) and answers "what does this meter show now" and "which car
washes happened between two instants". It also keeps the truth of what each meter showed, so tests can
compare the collector's findings with it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import numpy as np

from devices.profile import find_profile
from jieshui.inventory import Site
from simulators.model import NS, SHANGHAI, DeviceDay, SiteModel


class SimClock:
    """Simulated time = start + (wall time elapsed) x speed."""

    def __init__(self, start_ns: int | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._wall0 = time.time_ns()
        self._mono0 = time.monotonic_ns()
        self.start_ns = self._wall0 if start_ns is None else start_ns

    def now_ns(self) -> int:
        """The simulated time, UTC nanoseconds."""
        return self.start_ns + int((time.monotonic_ns() - self._mono0) * self.speed)

    def wall_ns_of(self, sim_ns: int) -> int:
        """The wall time at which the simulated clock reaches `sim_ns`."""
        return self._wall0 + int((sim_ns - self.start_ns) / self.speed)


@dataclass(frozen=True)
class WashEvent:
    """One car wash as the unit reports it."""

    sim_ns: int
    values: dict[str, float | int | str]


class LiveWorld:
    """The site model on a simulated clock, a day generated when the clock first needs it."""

    def __init__(self, site: Site, clock: SimClock, seed: int = 1, step_s: int = 60) -> None:
        self.site = site
        self.clock = clock
        self.model = SiteModel(site, seed=seed, step_s=step_s)
        self.step_s = step_s
        self._lock = threading.Lock()
        self._days: dict[dt.date, dict[tuple[str, str], DeviceDay]] = {}
        # true volumes since the start of the run, of days no longer kept
        self._past_truth: dict[tuple[str, str], dict[str, float]] = {}
        start_local = dt.datetime.fromtimestamp(clock.start_ns / NS, tz=SHANGHAI).date()
        self._next = start_local

    def _day(self, date: dt.date) -> dict[tuple[str, str], DeviceDay]:
        with self._lock:
            while self._next <= date:
                days = self.model.day(self._next)
                self._days[self._next] = {(d.community, d.device): d for d in days}
                # Keep two days: a reader may still be finishing yesterday.
                for old in [k for k in self._days if k < self._next - dt.timedelta(days=1)]:
                    for key, day in self._days.pop(old).items():
                        past = self._past_truth.setdefault(key, {})
                        for name, flow in _true_within(day, self.clock.start_ns, None).items():
                            past[name] = past.get(name, 0.0) + flow
                self._next += dt.timedelta(days=1)
            found = self._days.get(date)
        if found is None:
            raise LookupError(f"simulated day {date} is no longer kept")
        return found

    def initial_totals(self, community: str, device: str) -> dict[str, float | int | str]:
        """What an event-reporting device's totalizers show before its first event."""
        model = next(m for m in self.model.communities if m.community.id == community)
        meter = model.meters[device]
        profile = next(find_profile(d.profile) for _, d in model.community.devices() if d.id == device)
        return {
            q.name: int(meter.start.get(q.name, 0)) if q.type == "int" else meter.start.get(q.name, 0.0)
            for q in profile.quantities
            if q.totalizer
        }

    def device_day(self, community: str, device: str, sim_ns: int) -> DeviceDay:
        """The model's day of a device that holds `sim_ns`."""
        date = dt.datetime.fromtimestamp(sim_ns / NS, tz=SHANGHAI).date()
        return self._day(date)[(community, device)]

    def reading(self, community: str, device: str, sim_ns: int | None = None) -> dict[str, float | bool]:
        """What a grid meter shows at `sim_ns` (default now): its last reading at or before then."""
        t = self.clock.now_ns() if sim_ns is None else sim_ns
        day = self.device_day(community, device, t)
        i = int(np.searchsorted(day.time_ns, t, side="right")) - 1
        if i < 0:  # before the first step of the day ends: the previous day's last reading
            day = self.device_day(community, device, t - self.step_s * NS)
            i = len(day.time_ns) - 1
        out: dict[str, float | bool] = {}
        for q in day.profile.quantities:
            value = day.values[q.name][i]
            out[q.name] = bool(value) if q.type == "bool" else float(value)
        return out

    def truth(self, until_ns: int | None = None) -> dict[str, object]:
        """What really flowed through each device from the run's start to `until_ns` (default now):
        the ground truth of a live run, in the shape of the backfill's truth file."""
        stop = self.clock.now_ns() if until_ns is None else until_ns
        self._day(dt.datetime.fromtimestamp(stop / NS, tz=SHANGHAI).date())
        with self._lock:
            devices: dict[str, object] = {}
            keys = {k for day in self._days.values() for k in day} | set(self._past_truth)
            for key in sorted(keys):
                totals = dict(self._past_truth.get(key, {}))
                for day in (d[key] for d in self._days.values() if key in d):
                    for name, flow in _true_within(day, self.clock.start_ns, stop).items():
                        totals[name] = totals.get(name, 0.0) + flow
                devices[f"{key[0]}/{key[1]}"] = {"totals": totals}
        return {
            "schema": "jieshui.truth/1",
            "mode": "live",
            "start_ns": self.clock.start_ns,
            "stop_ns": stop,
            "speed": self.clock.speed,
            "devices": devices,
        }

    def washes(self, community: str, device: str, after_ns: int, until_ns: int) -> list[WashEvent]:
        """Car washes with after_ns < time <= until_ns, in order."""
        events: list[WashEvent] = []
        t = after_ns
        while True:
            day = self.device_day(community, device, t)
            mask = (day.time_ns > after_ns) & (day.time_ns <= until_ns)
            for i in np.flatnonzero(mask):
                values: dict[str, float | int | str] = {}
                for q in day.profile.quantities:
                    v = day.values[q.name][i]
                    values[q.name] = (
                        str(v) if q.type == "string" else (int(v) if q.type == "int" else float(v))
                    )
                events.append(WashEvent(int(day.time_ns[i]), values))
            next_midnight = (
                int(
                    dt.datetime.combine(
                        dt.datetime.fromtimestamp(t / NS, tz=SHANGHAI).date() + dt.timedelta(days=1),
                        dt.time(),
                        SHANGHAI,
                    ).timestamp()
                )
                * NS
            )
            if next_midnight > until_ns:
                return events
            t = next_midnight


def _true_within(day: DeviceDay, start_ns: int, stop_ns: int | None) -> dict[str, float]:
    """True volume per totalizer of readings stamped in (start_ns, stop_ns]."""
    mask = day.time_ns > start_ns
    if stop_ns is not None:
        mask &= day.time_ns <= stop_ns
    return {name: float(steps[mask].sum()) for name, steps in day.true_steps.items()}
