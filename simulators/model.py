"""The simulated world of a site, a local (Asia/Shanghai) day at a time.

`SiteModel.day(date)` returns, for every device of the inventory, what its meter shows at each step
of that day (what the Modbus registers or MQTT payloads carry) and the ground truth (the volumes that
really flowed). Days are produced in order from the start date because state carries over (tank
volume, first-flush events, totalizers, wet spells); each day's randomness comes from a generator
seeded by (seed, stream, date), so a run is reproducible with `--seed`. The live simulators and the
backfill both read from here, so they show the same world.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from devices.profile import DeviceKind, Profile, find_profile
from devices.registers import codecs_for, rollover_values
from jieshui.faults import Reset, Rollover, Spike, Stuck, Tamper
from jieshui.inventory import Community, Device, District, Facility, FacilityKind, Site
from simulators import physics

SHANGHAI = ZoneInfo("Asia/Shanghai")
F = npt.NDArray[np.float64]
NS = 10**9

#: Metering accuracy (max permissible error) by quantity: water meters class 2 (GB/T 778 upper zone),
#: tipping-bucket gauges about 3 %, energy meters class 1; counters and clocks are exact.
ACCURACY = {"mm": 0.03, "m3": 0.02, "kWh": 0.01}


def local_midnight_ns(date: dt.date) -> int:
    """UTC nanoseconds of 00:00 Asia/Shanghai on `date`."""
    return int(dt.datetime.combine(date, dt.time(), SHANGHAI).timestamp()) * NS


def _stream(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """An independent, reproducible generator for one stream (a device, a day...)."""
    return np.random.default_rng([seed, _stream(*parts)])


@dataclass
class WeatherState:
    """Rain of the last days, for the irrigation rules, and whether yesterday was wet."""

    wet_yesterday: bool = False
    recent_daily_mm: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


class Weather:
    """One district's rain: daily totals from the Markov-gamma generator, spread into one event a day."""

    def __init__(self, seed: int, district: str, step_s: int) -> None:
        self.seed, self.district, self.step_s = seed, district, step_s
        self.state = WeatherState()

    def day(self, date: dt.date) -> F:
        """Rain (mm) per step of `date`; advance the state."""
        rng = rng_for(self.seed, "rain", self.district, date.isoformat())
        daily = physics.daily_rainfall_mm(rng, np.array([date.month]), self.state.wet_yesterday)[0]
        self.state.wet_yesterday = daily > 0
        self.state.recent_daily_mm = [*self.state.recent_daily_mm[1:], float(daily)]
        return physics.spread_rain(rng, float(daily), 86400 // self.step_s)

    @property
    def last_24h_mm(self) -> float:
        """Rain of the day just generated (the irrigation rule looks back 24 h)."""
        return self.state.recent_daily_mm[-1]

    @property
    def last_72h_mm(self) -> float:
        """Rain of the last three days."""
        return float(sum(self.state.recent_daily_mm))


@dataclass
class DeviceDay:
    """One device on one day: reported values per step (grid devices) or per event (car wash).

    `time_ns` are UTC nanoseconds; `values` maps quantity -> array aligned with `time_ns` (what the
    meter shows, after accuracy, resolution and faults); `truth` maps a quantity to the volume (or
    count, or mm) that really passed during the day; `present` is False where the device was silent.
    """

    community: str
    device: str
    profile: Profile
    time_ns: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[np.generic]]
    truth: dict[str, float]
    present: npt.NDArray[np.bool_]
    # true volume (count, mm) of each totalizer per reading: what flowed up to that reading's time
    true_steps: dict[str, F] = field(default_factory=dict)


@dataclass
class _Meter:
    """A meter's fixed character: bias per totalizer, starting readings, register resolution."""

    bias: dict[str, float]
    start: dict[str, float]
    resolution: dict[str, float]
    rollover: dict[str, float]  # engineering value at which the register wraps (0 = never)


def _meter_for(profile: Profile, seed: int, key: str) -> _Meter:
    rng = rng_for(seed, "meter", key)
    bias: dict[str, float] = {}
    start: dict[str, float] = {}
    for q in profile.quantities:
        if q.totalizer:
            accuracy = ACCURACY.get(q.unit, 0.0)
            bias[q.name] = (
                float(np.clip(rng.normal(0, accuracy / 3), -accuracy, accuracy)) if accuracy else 0.0
            )
            # A meter that has been in service a while; a car-wash unit is new (the pilot starts it).
            in_service = profile.kind is not DeviceKind.CAR_WASH and q.unit in ("m3", "h", "kWh")
            start[q.name] = float(rng.uniform(100, 5000)) if in_service else 0.0
    resolution: dict[str, float] = {}
    for codec in codecs_for(profile):
        reg = codec.register
        if reg.type not in ("f32", "f64", "bool"):
            resolution[reg.quantity] = abs(reg.scale)
    rollover = rollover_values(profile)
    for quantity, wrap in rollover.items():
        start[quantity] = start.get(quantity, 0.0) % wrap  # within the register's range, whatever the reading
    if profile.mqtt is not None:
        for f in profile.mqtt.fields:
            if f.quantity is not None and f.type == "number":
                resolution.setdefault(f.quantity, 0.01 * f.scale)  # payloads carry 0.01 of their unit
    return _Meter(bias, start, resolution, rollover)


class CommunityModel:
    """Every facility of one community, advanced a local day at a time."""

    def __init__(self, district: District, community: Community, weather: Weather, seed: int, step_s: int):
        self.district = district
        self.community = community
        self.weather = weather
        self.seed = seed
        self.step_s = step_s
        self.steps = 86400 // step_s
        self.tank: dict[str, physics.TankState] = {}
        self.flush: dict[tuple[str, str], physics.FirstFlushState] = {}
        # true cumulative totals per device quantity since the start of the simulation
        self.cumulative: dict[tuple[str, str], float] = {}
        self.meters: dict[str, _Meter] = {}
        self.fault_state: dict[tuple[str, ...], float] = {}
        for facility in community.facilities:
            if facility.kind is FacilityKind.RAINWATER_HARVESTING and facility.tank_capacity_m3:
                level = facility.simulation.initial_level_pct / 100
                self.tank[facility.id] = physics.TankState(facility.tank_capacity_m3 * level)
            for device in facility.devices:
                self.meters[device.id] = _meter_for(
                    find_profile(device.profile), seed, f"{community.id}/{device.id}"
                )

    # -- physics per facility -----------------------------------------------------------------
    def _rainwater(
        self, facility: Facility, date: dt.date, rain: F, hour: npt.NDArray[np.int64]
    ) -> dict[str, F]:
        catchments = {c.id: c for c in self.community.catchments}
        inflow = np.zeros(self.steps)
        diverted = np.zeros(self.steps)
        for cid in facility.catchments:
            c = catchments[cid]
            state = self.flush.setdefault((facility.id, cid), physics.FirstFlushState())
            to_tank, flush = physics.runoff_m3(rain, c.area_m2, c.psi, c.first_flush_mm, state, self.step_s)
            inflow += to_tank
            diverted += flush
        rated = facility.rated_flow_m3h or 1.0
        demand = physics.irrigation_demand_m3(
            hour,
            date.month,
            self.weather.last_24h_mm,
            rated,
            self.step_s,
            tuple(facility.simulation.irrigation_hours),
        )
        capacity = facility.tank_capacity_m3 or 1.0
        tank = physics.tank_balance(
            inflow,
            demand,
            capacity,
            rated * self.step_s / 3600,
            self.tank[facility.id],
            reserve_m3=0.02 * capacity,
        )
        area_m2 = capacity / facility.simulation.tank_depth_m
        return {
            "rain_mm": rain,
            "first_flush_m3": diverted,
            "inflow_m3": inflow,
            "overflow_m3": tank.overflow_m3,
            "treated_m3": tank.supply_m3,
            "treatment_runtime_h": tank.supply_m3 / rated,
            "supply_m3": tank.supply_m3,
            "makeup_m3": tank.makeup_m3,
            # instantaneous quantities: the state at the end of each step
            "level_m": tank.volume_m3 / area_m2,
            "level_pct": tank.volume_m3 / capacity * 100,
            "treatment_flow_m3h": tank.supply_m3 * 3600 / self.step_s,
            "pump_running": (tank.supply_m3 > 0).astype(np.float64),
            "fault_code": np.zeros(self.steps),
            "volume_m3": tank.makeup_m3,  # the make-up meter
            "flow_m3h": tank.makeup_m3 * 3600 / self.step_s,
            "alarm_code": np.zeros(self.steps),
            "_storage_m3": tank.volume_m3,
        }

    def _river(self, facility: Facility, date: dt.date, hour: npt.NDArray[np.int64]) -> dict[str, F]:
        rng = rng_for(self.seed, "river", self.community.id, facility.id, date.isoformat())
        pump = physics.river_pump_day(
            rng, hour, date.month, self.weather.last_72h_mm, facility.rated_flow_m3h or 1.0,
            facility.simulation.run_minutes_per_day, self.step_s,
        )  # fmt: skip
        hours = pump.running * self.step_s / 3600
        return {
            "volume_m3": pump.volume_m3,
            "flow_m3h": pump.volume_m3 * 3600 / self.step_s,
            "runtime_h": hours.astype(np.float64),
            "power_kw": pump.power_kw,
            "energy_kwh": pump.power_kw * hours,
            "pressure_kpa": pump.pressure_kpa,
            "running": pump.running.astype(np.float64),
            "fault_code": np.zeros(self.steps),
            "alarm_code": np.zeros(self.steps),
        }

    def _car_wash(self, facility: Facility, date: dt.date) -> physics.WashEvents:
        rng = rng_for(self.seed, "wash", self.community.id, facility.id, date.isoformat())
        sim = facility.simulation
        per_day = sim.washes_per_day if sim.washes_per_day is not None else self.community.parking_spaces / 50
        litres = physics.MICRO_WASH_L.copy()
        if sim.litres_per_wash:
            for i, name in enumerate(physics.VEHICLE_CLASSES):
                litres[i] = sim.litres_per_wash.get(name, litres[i])
        return physics.car_washes(rng, per_day, litres, sim.recycled_share)

    # -- one day ------------------------------------------------------------------------------
    def day(self, date: dt.date, rain: F) -> list[DeviceDay]:
        """Advance the community by one local day given the district's rain; return its devices' day."""
        midnight = local_midnight_ns(date)
        # A reading is stamped at the end of its step: at t it shows the totals through t.
        time_ns = midnight + np.arange(1, self.steps + 1, dtype=np.int64) * self.step_s * NS
        hour = (np.arange(self.steps) * self.step_s // 3600).astype(np.int64)
        flows: dict[str, dict[str, F]] = {}
        washes: dict[str, physics.WashEvents] = {}
        potable = np.zeros(self.steps)  # everything downstream of the master meter except households
        for facility in self.community.facilities:
            if facility.kind is FacilityKind.RAINWATER_HARVESTING:
                flows[facility.id] = self._rainwater(facility, date, rain, hour)
                potable += flows[facility.id]["makeup_m3"]
            elif facility.kind is FacilityKind.RIVER_WATER:
                flows[facility.id] = self._river(facility, date, hour)
            elif facility.kind is FacilityKind.CAR_WASH:
                washes[facility.id] = events = self._car_wash(facility, date)
                fresh = np.zeros(self.steps)
                np.add.at(fresh, (events.offset_s // self.step_s).astype(np.int64), events.fresh_l / 1000)
                flows[facility.id] = {"volume_m3": fresh, "flow_m3h": fresh * 3600 / self.step_s,
                                      "alarm_code": np.zeros(self.steps)}  # fmt: skip
                potable += fresh
        rng = rng_for(self.seed, "households", self.community.id, date.isoformat())
        household = physics.household_m3(
            rng, hour, self.community.population, self.community.household_lpcd, self.step_s
        )
        for facility in self.community.facilities:
            if facility.kind is FacilityKind.MASTER_METER:
                total = household + potable
                flows[facility.id] = {"volume_m3": total, "flow_m3h": total * 3600 / self.step_s,
                                      "alarm_code": np.zeros(self.steps)}  # fmt: skip
        out: list[DeviceDay] = []
        for facility, device in self.community.devices():
            profile = find_profile(device.profile)
            if profile.kind is DeviceKind.CAR_WASH:
                out.append(self._wash_day(device, profile, midnight, washes[facility.id]))
            else:
                out.append(self._grid_day(device, profile, time_ns, flows[facility.id]))
        return out

    def _grid_day(
        self, device: Device, profile: Profile, time_ns: npt.NDArray[np.int64], flow: dict[str, F]
    ) -> DeviceDay:
        meter = self.meters[device.id]
        values: dict[str, npt.NDArray[np.generic]] = {}
        truth: dict[str, float] = {}
        true_steps: dict[str, F] = {}
        for q in profile.quantities:
            per_step = flow[q.name]
            if q.totalizer:
                true_steps[q.name] = per_step
                key = (device.id, q.name)
                before = self.cumulative.get(key, 0.0)
                true_cum = before + np.cumsum(per_step)
                self.cumulative[key] = float(true_cum[-1])
                truth[q.name] = float(per_step.sum())
                shown = meter.start[q.name] + true_cum * (1 + meter.bias[q.name])
                step = meter.resolution.get(q.name)
                if step:
                    shown = np.floor(shown / step + 1e-9) * step  # a counter shows whole steps it has passed
                values[q.name] = shown
            elif q.type == "bool":
                values[q.name] = per_step > 0.5
            else:
                step = meter.resolution.get(q.name)
                values[q.name] = np.round(per_step / step) * step if step else per_step.copy()
        if "_storage_m3" in flow and profile.kind is DeviceKind.RAINWATER_SYSTEM:
            truth["storage_m3_end"] = float(flow["_storage_m3"][-1])
        present = np.ones(len(time_ns), dtype=bool)
        self._apply_value_faults(device, profile, time_ns, values, meter)
        return DeviceDay(self.community.id, device.id, profile, time_ns, values, truth, present, true_steps)

    def _wash_day(self, device: Device, profile: Profile, midnight: int, ev: physics.WashEvents) -> DeviceDay:
        meter = self.meters[device.id]
        n = len(ev.offset_s)
        count_key, fresh_key, rec_key = (
            (device.id, "wash_count"),
            (device.id, "fresh_m3"),
            (device.id, "recycled_m3"),
        )
        count = self.cumulative.get(count_key, 0.0) + np.arange(1, n + 1)
        fresh = self.cumulative.get(fresh_key, 0.0) + np.cumsum(ev.fresh_l) / 1000
        recycled = self.cumulative.get(rec_key, 0.0) + np.cumsum(ev.recycled_l) / 1000
        if n:
            self.cumulative[count_key] = float(count[-1])
            self.cumulative[fresh_key] = float(fresh[-1])
            self.cumulative[rec_key] = float(recycled[-1])
        classes = (
            np.array(physics.VEHICLE_CLASSES, dtype=object)[ev.vehicle] if n else np.array([], dtype=object)
        )
        values: dict[str, npt.NDArray[np.generic]] = {
            "wash_count": count,
            "wash_l": np.round(ev.fresh_l, 2),
            "recycled_l": np.round(ev.recycled_l, 2),
            "vehicle_class": classes,
            "fresh_m3": np.round(meter.start["fresh_m3"] + fresh * (1 + meter.bias["fresh_m3"]), 5),
            "recycled_m3": np.round(
                meter.start["recycled_m3"] + recycled * (1 + meter.bias["recycled_m3"]), 5
            ),
        }
        truth = {"wash_count": float(n), "fresh_m3": float(ev.fresh_l.sum() / 1000),
                 "recycled_m3": float(ev.recycled_l.sum() / 1000)}  # fmt: skip
        for i, name in enumerate(physics.VEHICLE_CLASSES):
            mask = ev.vehicle == i
            truth[f"washes_{name}"] = float(mask.sum())
            truth[f"fresh_l_{name}"] = float(ev.fresh_l[mask].sum())
        time_ns = midnight + (ev.offset_s * NS).astype(np.int64)
        self._apply_value_faults(device, profile, time_ns, values, meter)
        true_steps = {
            "wash_count": np.ones(n),
            "fresh_m3": ev.fresh_l / 1000,
            "recycled_m3": ev.recycled_l / 1000,
        }
        present = np.ones(n, dtype=bool)
        return DeviceDay(self.community.id, device.id, profile, time_ns, values, truth, present, true_steps)

    def _apply_value_faults(
        self, device: Device, profile: Profile, time_ns: npt.NDArray[np.int64],
        values: dict[str, npt.NDArray[np.generic]], meter: _Meter,
    ) -> None:  # fmt: skip
        """Apply the device's value faults (stuck, spike, reset, rollover, tamper) to what it shows."""
        if not len(time_ns):
            return
        for fault in device.faults:
            quantity = getattr(fault, "quantity", None)
            if quantity is None or quantity not in values:
                continue
            start = int(fault.start.timestamp() * NS) if fault.start else None
            end = int(fault.end.timestamp() * NS) if fault.end else None
            active = np.ones(len(time_ns), dtype=bool)
            if start is not None:
                active &= time_ns >= start
            if end is not None:
                active &= time_ns < end
            shown = values[quantity].astype(np.float64)
            if isinstance(fault, Stuck):
                key = (device.id, quantity)
                if active.any():
                    first = int(np.argmax(active))
                    frozen = self.fault_state.setdefault(key, float(shown[first]))
                    shown = np.where(active, frozen, shown)
            elif isinstance(fault, Spike):
                # One reading: the first at or after `start` (this day holds it if start falls after
                # the previous day's last reading and not after this day's last one).
                spacing = int(time_ns[1] - time_ns[0]) if len(time_ns) > 1 else NS
                if start is not None and time_ns[0] - spacing < start <= time_ns[-1]:
                    i = int(np.searchsorted(time_ns, start))
                    shown[i] = shown[i] * fault.factor if shown[i] else fault.factor
            elif isinstance(fault, Reset):
                # From the replacement on, the new meter shows new_reading + what flowed since.
                at_key = (device.id, quantity, "reset")
                if active.any():
                    base = self.fault_state.setdefault(at_key, float(shown[int(np.argmax(active))]))
                    shown = np.where(active, fault.new_reading + (shown - base), shown)
            elif isinstance(fault, Tamper):
                at_key = (device.id, quantity, "tamper")
                if active.any():
                    base = self.fault_state.setdefault(at_key, float(shown[int(np.argmax(active))]))
                    shown = np.where(active, base + (shown - base) * fault.factor, shown)
            elif isinstance(fault, Rollover):
                wrap = meter.rollover.get(quantity)
                if wrap:
                    offset_key = (device.id, quantity, "rollover")
                    step = meter.resolution.get(quantity, 1.0)
                    offset = self.fault_state.setdefault(
                        offset_key, wrap - fault.before_wrap * step - float(shown[0])
                    )
                    shown = np.where(active, np.mod(shown + offset, wrap), shown)
            values[quantity] = shown


class SiteModel:
    """All communities of a site with one weather per district, advanced day by day."""

    def __init__(self, site: Site, seed: int = 1, step_s: int = 60) -> None:
        if 86400 % step_s:
            raise ValueError(f"step {step_s} s does not divide a day")
        self.site = site
        self.seed = seed
        self.step_s = step_s
        self.weather = {d.id: Weather(seed, d.id, step_s) for d in site.districts}
        self.communities = [
            CommunityModel(d, c, self.weather[d.id], seed, step_s) for d, c in site.communities()
        ]

    def day(self, date: dt.date) -> list[DeviceDay]:
        """Every device's day, for one local date (call with consecutive dates)."""
        out: list[DeviceDay] = []
        rain = {d: w.day(date) for d, w in self.weather.items()}
        for model in self.communities:
            out.extend(model.day(date, rain[model.district.id]))
        return out
