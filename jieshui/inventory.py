"""The site inventory: districts -> communities -> facilities and devices -> claims.

Simulators, collector, verification and API all read the same YAML file through `load_site`. The
models mirror the programme's application form (DOMAIN.md: 街道/镇, 小区名称, 居委, 联系人, 电话, 邮编,
地址, 户数, 人口, 申报示范小区) plus what metering needs (catchments, facilities, devices and their
connections) and what each measure claims. Every error names the file, the line and the dotted path
(`examples/site.yaml:42: districts.0.communities.3.households: must be > 0`); the rules that span
several fields (unique ids, references, the programme's per-district limits) are checked after the
fields, by `check_rules`, a pure function.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from devices.profile import DeviceKind, Profile, find_profile
from jieshui.errors import InventoryError, ProfileError
from jieshui.faults import VALUE_FAULTS, Fault

SLUG = r"^[a-z0-9][a-z0-9-]*$"
Slug = Annotated[str, Field(pattern=SLUG, max_length=64)]

# Programme limits per district and application year (沪水务〔2020〕610号, DOMAIN.md).
MAX_APPLICATIONS_PER_DISTRICT = 8
MAX_BENCHMARKS_PER_DISTRICT = 2
MAX_CAR_WASH_PILOTS_PER_DISTRICT = 2
# Plausible people per household, used to catch swapped or mistyped 户数/人口.
PEOPLE_PER_HOUSEHOLD = (1.0, 6.0)
# 电话 on the application form: a landline, with or without its area code (021-62681234, 62681234, as
# the notice's own contact line), or an 11-digit mobile,
# optionally after +86. One pattern for the inventory and the programme's forms (programme/forms.py).
PHONE_PATTERN = r"^(\+?86[- ]?)?((0\d{2,3}-?)?\d{7,8}|1\d{10})$"
#: Calendar dates of the programme (installation days, removals) are Asia/Shanghai days.
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


class _Model(BaseModel):
    # YAML reads `.inf` and `.nan` as floats: an infinite tank or claim passed every `gt=0` before
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Surface(StrEnum):
    """Catchment surface types with their runoff coefficients (DOMAIN.md, GB 50555-2010)."""

    HARD_ROOF = "hard_roof"
    GRAVEL_ROOF = "gravel_roof"
    GREEN_ROOF = "green_roof"
    CONCRETE_PAVING = "concrete_paving"
    BLOCK_PAVING = "block_paving"
    GREEN_SPACE = "green_space"


#: Mid-range runoff coefficient psi per surface (DOMAIN.md "Runoff"); a catchment may set its own.
RUNOFF_COEFFICIENT: dict[Surface, float] = {
    Surface.HARD_ROOF: 0.85,
    Surface.GRAVEL_ROOF: 0.65,
    Surface.GREEN_ROOF: 0.35,
    Surface.CONCRETE_PAVING: 0.85,
    Surface.BLOCK_PAVING: 0.55,
    Surface.GREEN_SPACE: 0.15,
}


class Catchment(_Model):
    """A surface whose runoff feeds a rainwater tank."""

    id: Slug
    surface: Surface
    area_m2: float = Field(gt=0)
    runoff_coefficient: float | None = Field(default=None, gt=0, le=1)
    # First-flush diversion depth; 2-3 mm on roofs (DOMAIN.md), 2.5 mm unless the site says otherwise.
    first_flush_mm: float = Field(default=2.5, ge=0, le=20)

    @property
    def psi(self) -> float:
        """The runoff coefficient used: the catchment's own, else the surface's typical value."""
        return (
            self.runoff_coefficient
            if self.runoff_coefficient is not None
            else RUNOFF_COEFFICIENT[self.surface]
        )


class ModbusTcp(_Model):
    """A device (or a gateway with unit ids) on Modbus TCP."""

    protocol: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)


class ModbusRtu(_Model):
    """A device on a Modbus RTU serial line (RS-485)."""

    protocol: Literal["modbus_rtu"]
    serial_port: str = Field(min_length=1)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    unit_id: int = Field(default=1, ge=1, le=247)


class Mqtt(_Model):
    """A device publishing to `jieshui/<district>/<community>/<device>/telemetry`."""

    protocol: Literal["mqtt"]


Connection = Annotated[ModbusTcp | ModbusRtu | Mqtt, Field(discriminator="protocol")]


#: Nominal sizes of water meters, DN in mm (GB/T 778.1, ISO 4064-1).
NominalDn = Literal[15, 20, 25, 32, 40, 50, 65, 80, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800]
NOMINAL_DN: tuple[int, ...] = get_args(NominalDn)
#: Accuracy classes of water meters (GB/T 778.1): class 1 (+-1 % in the upper flow zone) or 2 (+-2 %).


def _class_as_text(value: object) -> object:
    """`accuracy_class: 2` in YAML is the class "2"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


AccuracyClass = Annotated[Literal["1", "2"], BeforeValidator(_class_as_text)]
#: The years a registry date may fall in (the programme's; also what SQL and the API accept).
FIRST_YEAR, LAST_YEAR = 2000, 2100
RegistryDate = Annotated[dt.date, Field(ge=dt.date(FIRST_YEAR, 1, 1), le=dt.date(LAST_YEAR, 12, 31))]
#: Text without control characters (a NUL is refused by PostgreSQL, the rest by a reader's terminal).
CONTROL_FREE = r"^[^\x00-\x1f\x7f]+$"
RegistryText = Annotated[str, Field(min_length=1, max_length=64, pattern=CONTROL_FREE)]


class MeterInfo(_Model):
    """The physical meter behind a device (the meter registry, evidence.meters): what the service-life
    and calibration check reads (JJG 162; docs/verification.md)."""

    serial: RegistryText
    nominal_dn: NominalDn  # DN, mm
    accuracy_class: AccuracyClass = "2"
    installed_on: RegistryDate
    calibrated_on: RegistryDate | None = None  # the last verification; none recorded: the installation's
    removed_at: AwareDatetime | None = None  # past meters only


class Replacement(_Model):
    """A meter swapped on a device, for one totalizer: readings stamped before `replaced_at` are the old
    meter's, at or after it the new one's. Consumption across the swap is (old_final_reading - the last
    old reading) + (the first new reading - new_first_reading) (evidence.meters)."""

    quantity: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)  # a totalizer of the profile
    replaced_at: AwareDatetime
    old_serial: RegistryText
    old_final_reading: float = Field(ge=0, le=1e12)
    new_serial: RegistryText
    new_first_reading: float = Field(ge=0, le=1e12)
    recorded_by: RegistryText  # who read the meters (a name, or the API key id that recorded it)
    recorded_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=2000)


class Device(_Model):
    """A meter or controller: which profile decodes it, how it is reached, how often it is read."""

    id: Slug
    profile: str = Field(min_length=1)
    kind: DeviceKind | None = None  # optional; when given it must match the profile's kind
    connection: Connection
    poll_interval_s: float = Field(default=60.0, gt=0, le=86400)
    serial_number: str | None = None
    faults: list[Fault] = Field(default_factory=list)  # simulators only: what goes wrong, and when
    meter: MeterInfo | None = None  # the meter in place (the registry; optional)
    past_meters: list[MeterInfo] = Field(default_factory=list)  # meters removed, each with removed_at
    replacements: list[Replacement] = Field(default_factory=list)  # swaps with their readings

    def interval_s(self) -> float:
        """How often it reports: a polled device at its poll interval; an MQTT device at least every
        `report_interval_s` of its profile (it may send more often, on events)."""
        mqtt = find_profile(self.profile).mqtt
        if self.connection.protocol == "mqtt" and mqtt is not None and mqtt.report_interval_s:
            return mqtt.report_interval_s
        return self.poll_interval_s


class FacilityKind(StrEnum):
    """The water-saving measures of the programme, plus the community's master meter."""

    RAINWATER_HARVESTING = "rainwater_harvesting"
    RIVER_WATER = "river_water"
    CAR_WASH = "car_wash"
    MASTER_METER = "master_meter"


#: Which device kinds a facility of each kind may hold.
FACILITY_DEVICE_KINDS: dict[FacilityKind, frozenset[DeviceKind]] = {
    FacilityKind.RAINWATER_HARVESTING: frozenset({DeviceKind.RAINWATER_SYSTEM, DeviceKind.WATER_METER}),
    FacilityKind.RIVER_WATER: frozenset({DeviceKind.RIVER_PUMP, DeviceKind.WATER_METER}),
    FacilityKind.CAR_WASH: frozenset({DeviceKind.CAR_WASH, DeviceKind.WATER_METER}),
    FacilityKind.MASTER_METER: frozenset({DeviceKind.WATER_METER}),
}


class FacilitySimulation(_Model):
    """How the simulators drive a facility (defaults fit the notice's examples)."""

    irrigation_hours: list[int] = Field(default=[6, 7], min_length=1)  # local hours the reuse pump serves
    initial_level_pct: float = Field(default=50.0, ge=0, le=100)
    tank_depth_m: float = Field(default=3.0, gt=0, le=10)
    run_minutes_per_day: float = Field(default=25.0, ge=0, le=1440)  # river pump on an irrigation day
    washes_per_day: float | None = Field(default=None, ge=0)  # default: parking spaces / 50
    litres_per_wash: dict[str, float] | None = None  # fresh litres by vehicle class (micro-water default)
    recycled_share: float = Field(default=0.3, ge=0, lt=1)


class Facility(_Model):
    """An installation that saves (or, for the master meter, measures) water, with its devices."""

    id: Slug
    kind: FacilityKind
    name: str = Field(min_length=1)
    catchments: list[Slug] = Field(default_factory=list)  # rainwater: ids of the community's catchments
    tank_capacity_m3: float | None = Field(default=None, gt=0)
    rated_flow_m3h: float | None = Field(default=None, gt=0)  # treatment unit or pump
    devices: list[Device] = Field(default_factory=list)
    simulation: FacilitySimulation = Field(default_factory=FacilitySimulation)


class Measure(StrEnum):
    """What a claim states; each measure has one unit and one facility kind."""

    RAINWATER_REUSE_PER_DAY = "rainwater_reuse_per_day"
    RAINWATER_REUSE_PER_YEAR = "rainwater_reuse_per_year"
    RIVER_WATER_PER_YEAR = "river_water_per_year"
    CAR_WASH_WATER_PER_CAR = "car_wash_water_per_car"
    PER_CAPITA_USE = "per_capita_use"


#: The unit and the facility kind each measure is claimed in.
MEASURE_UNIT: dict[Measure, tuple[str, FacilityKind]] = {
    Measure.RAINWATER_REUSE_PER_DAY: ("m3/day", FacilityKind.RAINWATER_HARVESTING),
    Measure.RAINWATER_REUSE_PER_YEAR: ("m3/year", FacilityKind.RAINWATER_HARVESTING),
    Measure.RIVER_WATER_PER_YEAR: ("m3/year", FacilityKind.RIVER_WATER),
    Measure.CAR_WASH_WATER_PER_CAR: ("L/car", FacilityKind.CAR_WASH),
    Measure.PER_CAPITA_USE: ("L/person/day", FacilityKind.MASTER_METER),
}


class VehicleClass(StrEnum):
    """Vehicle classes of the car-wash quotas (DOMAIN.md: 40/50/55/90 L per car)."""

    SEDAN = "sedan"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Claim(_Model):
    """A saving a community claims for one facility and one reporting year."""

    id: Slug
    facility: Slug
    measure: Measure
    value: float = Field(gt=0)
    unit: str
    year: int = Field(ge=2000, le=2100)
    vehicle_class: VehicleClass | None = None  # car-wash claims may be per class
    note: str | None = None


class Community(_Model):
    """A residential community (小区): the application form's fields, its catchments, facilities, claims."""

    id: Slug
    name: str = Field(min_length=1)  # 小区名称
    name_en: str | None = None
    street_town: str = Field(min_length=1)  # 街道/镇
    residents_committee: str = Field(min_length=1)  # 居委
    contact: str = Field(min_length=1)  # 联系人
    phone: str = Field(pattern=PHONE_PATTERN)  # 电话: landline or mobile
    postcode: str = Field(pattern=r"^\d{6}$")  # 邮编
    address: str = Field(min_length=1)  # 地址
    households: int = Field(gt=0)  # 户数
    population: int = Field(gt=0)  # 人口
    application_year: int = Field(ge=2000, le=2100)
    benchmark: bool = False  # 申报示范（标杆）小区
    car_wash_pilot: bool = False  # 微水洗车试点
    parking_spaces: int = Field(default=0, ge=0)
    green_area_m2: float = Field(default=0, ge=0)
    catchments: list[Catchment] = Field(default_factory=list)
    facilities: list[Facility] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    household_lpcd: float = Field(default=150.0, gt=0, le=1000)  # simulators: L/person/day at home

    def devices(self) -> Iterator[tuple[Facility, Device]]:
        """Every device of the community with the facility it belongs to."""
        for facility in self.facilities:
            for device in facility.devices:
                yield facility, device


class District(_Model):
    """A district (区) of Shanghai, which collects its communities' applications."""

    id: Slug
    name: str = Field(min_length=1)
    name_en: str | None = None
    communities: list[Community] = Field(default_factory=list)


class Site(_Model):
    """A whole inventory file."""

    schema_version: Literal[1] = 1
    districts: list[District] = Field(min_length=1)

    def communities(self) -> Iterator[tuple[District, Community]]:
        """Every community with its district."""
        for district in self.districts:
            for community in district.communities:
                yield district, community

    def community(self, community_id: str) -> tuple[District, Community]:
        """The community with this id and its district; KeyError if absent."""
        for district, community in self.communities():
            if community.id == community_id:
                return district, community
        raise KeyError(community_id)

    def summary(self) -> str:
        """One line counting what the inventory holds."""
        communities = [c for _, c in self.communities()]
        facilities = sum(len(c.facilities) for c in communities)
        devices = sum(1 for c in communities for _ in c.devices())
        claims = sum(len(c.claims) for c in communities)
        return (
            f"{len(self.districts)} district(s), {len(communities)} communities, {facilities} facilities, "
            f"{devices} devices, {claims} claims"
        )


# --- rules across fields ------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _duplicates(ids: list[str]) -> set[str]:
    return {i for i, n in Counter(ids).items() if n > 1}


def check_rules(site: Site) -> list[tuple[Path_, str]]:
    """Check the rules that span fields; return (path, message) for each violation, in file order."""
    problems: list[tuple[Path_, str]] = []
    seen_communities: dict[str, Path_] = {}
    endpoints: dict[tuple[str, ...], Path_] = {}
    dup_districts = _duplicates([d.id for d in site.districts])
    for di, district in enumerate(site.districts):
        dp: Path_ = ("districts", di)
        if district.id in dup_districts:
            problems.append(((*dp, "id"), f"district id {district.id!r} is used more than once"))
        per_year: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for ci, community in enumerate(district.communities):
            cp: Path_ = (*dp, "communities", ci)
            if community.id in seen_communities:
                first = ".".join(map(str, seen_communities[community.id]))
                problems.append(((*cp, "id"), f"community id {community.id!r} is already used at {first}"))
            else:
                seen_communities[community.id] = cp
            year = per_year[community.application_year]
            year["applications"].append(ci)
            if community.benchmark:
                year["benchmark"].append(ci)
            if community.car_wash_pilot:
                year["car_wash_pilot"].append(ci)
            ratio = community.population / community.households
            if not PEOPLE_PER_HOUSEHOLD[0] <= ratio <= PEOPLE_PER_HOUSEHOLD[1]:
                problems.append(
                    (
                        (*cp, "population"),
                        f"{community.population} people in {community.households} households is "
                        f"{ratio:.1f} per household, outside {PEOPLE_PER_HOUSEHOLD[0]:g}-"
                        f"{PEOPLE_PER_HOUSEHOLD[1]:g}",
                    )
                )
            problems.extend(_check_community(community, cp, endpoints))
        for year_value, groups in sorted(per_year.items()):
            limits = (
                ("applications", MAX_APPLICATIONS_PER_DISTRICT, "applying communities", "id"),
                ("benchmark", MAX_BENCHMARKS_PER_DISTRICT, "benchmark (示范) applications", "benchmark"),
                ("car_wash_pilot", MAX_CAR_WASH_PILOTS_PER_DISTRICT, "car-wash pilots", "car_wash_pilot"),
            )
            for group, limit, what, field in limits:
                members = groups.get(group, [])
                if len(members) > limit:
                    problems.append(
                        (
                            (*dp, "communities", members[limit], field),
                            f"district {district.id!r} has {len(members)} {what} in {year_value}; "
                            f"the programme allows at most {limit}",
                        )
                    )
    return problems


def _check_community(
    community: Community, cp: Path_, endpoints: dict[tuple[str, ...], Path_]
) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for key, singular, items in (
        ("catchments", "catchment", [c.id for c in community.catchments]),
        ("facilities", "facility", [f.id for f in community.facilities]),
        ("claims", "claim", [c.id for c in community.claims]),
    ):
        dups = _duplicates(items)
        for i, item in enumerate(items):
            if item in dups:
                problems.append(((*cp, key, i, "id"), f"{singular} id {item!r} is used more than once"))
                dups.discard(item)
    catchment_ids = {c.id for c in community.catchments}
    facilities = {f.id: f for f in community.facilities}
    device_ids: set[str] = set()
    for fi, facility in enumerate(community.facilities):
        fp: Path_ = (*cp, "facilities", fi)
        for ki, ref in enumerate(facility.catchments):
            if ref not in catchment_ids:
                problems.append(
                    ((*fp, "catchments", ki), f"no catchment {ref!r} in community {community.id!r}")
                )
        if facility.kind is FacilityKind.RAINWATER_HARVESTING:
            if facility.tank_capacity_m3 is None:
                problems.append(
                    ((*fp, "tank_capacity_m3"), "a rainwater harvesting facility needs its tank capacity")
                )
            if not facility.catchments:
                problems.append(
                    ((*fp, "catchments"), "a rainwater harvesting facility needs at least one catchment")
                )
        if facility.kind in (FacilityKind.RAINWATER_HARVESTING, FacilityKind.RIVER_WATER) and (
            facility.rated_flow_m3h is None
        ):
            what = "treatment unit" if facility.kind is FacilityKind.RAINWATER_HARVESTING else "pump"
            problems.append(((*fp, "rated_flow_m3h"), f"the {what}'s rated flow is needed"))
        if facility.kind is not FacilityKind.RAINWATER_HARVESTING and facility.catchments:
            problems.append(
                (
                    (*fp, "catchments"),
                    f"only rainwater harvesting facilities have catchments, not {facility.kind}",
                )
            )
        for vi, device in enumerate(facility.devices):
            vp: Path_ = (*fp, "devices", vi)
            if device.id in device_ids:
                problems.append(
                    (
                        (*vp, "id"),
                        f"device id {device.id!r} is used more than once in community {community.id!r}",
                    )
                )
            device_ids.add(device.id)
            try:
                profile = find_profile(device.profile)
            except ProfileError as exc:
                problems.append(((*vp, "profile"), str(exc)))
                continue
            if device.kind is not None and device.kind is not profile.kind:
                problems.append(
                    (
                        (*vp, "kind"),
                        f"kind {device.kind} contradicts profile {profile.ref}, which is a {profile.kind}",
                    )
                )
            for ki, fault in enumerate(device.faults):
                quantity = getattr(fault, "quantity", None)
                if quantity is not None and quantity not in profile.quantity:
                    problems.append(
                        (
                            (*vp, "faults", ki, "quantity"),
                            f"profile {profile.ref} has no quantity {quantity!r}",
                        )
                    )
                elif (
                    isinstance(fault, VALUE_FAULTS)
                    and fault.kind not in ("stuck", "spike")
                    and quantity is not None
                    and not profile.quantity[quantity].totalizer
                ):
                    problems.append(((*vp, "faults", ki, "quantity"), f"{quantity!r} is not a totalizer"))
            problems.extend(_check_meters(device, profile, vp))
            if profile.kind not in FACILITY_DEVICE_KINDS[facility.kind]:
                allowed = ", ".join(sorted(FACILITY_DEVICE_KINDS[facility.kind]))
                problems.append(
                    (
                        (*vp, "profile"),
                        f"a {profile.kind} device does not belong in a {facility.kind} facility "
                        f"(allowed: {allowed})",
                    )
                )
            conn = device.connection
            endpoint: tuple[str, ...] | None = None
            if isinstance(conn, ModbusTcp):
                endpoint = ("tcp", conn.host, str(conn.port), str(conn.unit_id))
            elif isinstance(conn, ModbusRtu):
                endpoint = ("rtu", conn.serial_port, str(conn.unit_id))
                # one RS-485 line has one speed and framing: the collector opens it with the first
                # device's settings, so a device set otherwise would never be understood
                framing = ("rtu-line", conn.serial_port, str(conn.baudrate), conn.parity, str(conn.bytesize),
                        str(conn.stopbits))  # fmt: skip
                for known, first in endpoints.items():
                    if known[:2] == framing[:2] and known != framing:
                        theirs = (
                            f"{known[2]} baud, parity {known[3]}, {known[4]} data bits, {known[5]} stop bits"
                        )
                        where = ".".join(map(str, first))
                        why = (
                            f"serial line {conn.serial_port} runs at {theirs} for {where}; every device "
                            "on one line needs the same baudrate, parity, bytesize and stopbits"
                        )
                        problems.append(((*vp, "connection"), why))
                        break
                else:
                    endpoints.setdefault(framing, vp)
            if endpoint is not None:
                if endpoint in endpoints:
                    other = ".".join(map(str, endpoints[endpoint]))
                    problems.append(
                        (
                            (*vp, "connection", "unit_id"),
                            f"Modbus address {'/'.join(endpoint[1:])} is already used by {other}",
                        )
                    )
                else:
                    endpoints[endpoint] = vp
    for ki, claim in enumerate(community.claims):
        kp: Path_ = (*cp, "claims", ki)
        unit, facility_kind = MEASURE_UNIT[claim.measure]
        if claim.unit != unit:
            problems.append(((*kp, "unit"), f"{claim.measure} is claimed in {unit}, not {claim.unit!r}"))
        target = facilities.get(claim.facility)
        if target is None:
            problems.append(
                ((*kp, "facility"), f"no facility {claim.facility!r} in community {community.id!r}")
            )
        elif target.kind is not facility_kind:
            problems.append(
                (
                    (*kp, "measure"),
                    f"{claim.measure} needs a {facility_kind} facility; {target.id!r} is {target.kind}",
                )
            )
        if claim.vehicle_class is not None and claim.measure is not Measure.CAR_WASH_WATER_PER_CAR:
            problems.append(((*kp, "vehicle_class"), "only car-wash claims have a vehicle class"))
    return problems


def _in_years(t: dt.datetime) -> bool:
    return FIRST_YEAR <= t.year <= LAST_YEAR


def _check_meters(device: Device, profile: Profile, vp: Path_) -> list[tuple[Path_, str]]:
    """The meter registry of a device: the current meter has no removal, past meters have one after
    their installation and do not overlap, every serial once; each replacement names a totalizer of the
    profile, falls in the programme's years, installs a different meter than it removes and follows on
    from the one before it (its old meter is the meter the previous swap installed), and the last one
    installed the device's current meter."""
    problems: list[tuple[Path_, str]] = []
    if device.meter is not None and device.meter.removed_at is not None:
        problems.append(
            (
                (*vp, "meter", "removed_at"),
                "the meter in place has no removal; list a removed one under past_meters",
            )
        )
    seen: dict[str, Path_] = {}
    listed: list[tuple[Path_, MeterInfo]] = [(("meter",), device.meter)] if device.meter is not None else []
    listed += [(("past_meters", i), m) for i, m in enumerate(device.past_meters)]
    for where, meter in listed:
        mp: Path_ = (*vp, *where)
        if meter.serial in seen:
            other = ".".join(map(str, seen[meter.serial]))
            problems.append(((*mp, "serial"), f"meter {meter.serial!r} is already listed at {other}"))
        seen.setdefault(meter.serial, mp)
        if where[0] == "past_meters":
            if meter.removed_at is None:
                problems.append(((*mp, "removed_at"), "a past meter needs the time it was removed"))
            elif not _in_years(meter.removed_at):
                problems.append(((*mp, "removed_at"), f"must be within {FIRST_YEAR}-{LAST_YEAR}"))
            elif meter.removed_at.astimezone(SHANGHAI).date() < meter.installed_on:
                problems.append(
                    ((*mp, "removed_at"), f"{meter.removed_at.isoformat()} is before the meter was installed "
                     f"({meter.installed_on})")
                )  # fmt: skip
    past = sorted(
        ((i, m) for i, m in enumerate(device.past_meters) if m.removed_at is not None),
        key=lambda p: p[1].installed_on,
    )
    for (_, earlier), (i, later) in pairwise(past):
        assert earlier.removed_at is not None  # noqa: S101 (filtered above)
        if later.installed_on < earlier.removed_at.astimezone(SHANGHAI).date():
            problems.append(
                ((*vp, "past_meters", i, "installed_on"),
                 f"{later.installed_on} is before meter {earlier.serial!r} was removed "
                 f"({earlier.removed_at.isoformat()})")
            )  # fmt: skip
    if device.meter is not None and past:
        last = max((m for _, m in past), key=lambda m: m.removed_at or dt.datetime.min.replace(tzinfo=dt.UTC))
        assert last.removed_at is not None  # noqa: S101
        if device.meter.installed_on < last.removed_at.astimezone(SHANGHAI).date():
            problems.append(
                ((*vp, "meter", "installed_on"),
                 f"{device.meter.installed_on} is before meter {last.serial!r} was removed "
                 f"({last.removed_at.isoformat()})")
            )  # fmt: skip
    by_quantity: dict[str, list[tuple[int, Replacement]]] = defaultdict(list)
    recorded: dict[tuple[str, dt.datetime], int] = {}
    for ri, replacement in enumerate(device.replacements):
        rp: Path_ = (*vp, "replacements", ri)
        quantity = profile.quantity.get(replacement.quantity)
        if quantity is None:
            known = ", ".join(q.name for q in profile.quantities if q.totalizer)
            problems.append(
                ((*rp, "quantity"), f"profile {profile.ref} has no quantity {replacement.quantity!r} "
                 f"(its totalizers: {known})")
            )  # fmt: skip
            continue
        if not quantity.totalizer:
            problems.append(((*rp, "quantity"), f"{replacement.quantity!r} is not a totalizer"))
            continue
        if not _in_years(replacement.replaced_at):
            problems.append(((*rp, "replaced_at"), f"must be within {FIRST_YEAR}-{LAST_YEAR}"))
            continue
        if replacement.old_serial == replacement.new_serial:
            problems.append(
                ((*rp, "new_serial"), f"the new meter is the old one ({replacement.old_serial!r})")
            )
        key = (replacement.quantity, replacement.replaced_at)
        if key in recorded:
            problems.append(
                ((*rp, "replaced_at"), f"a replacement of {replacement.quantity} at "
                 f"{replacement.replaced_at.isoformat()} is already recorded at replacements.{recorded[key]}")
            )  # fmt: skip
            continue
        recorded[key] = ri
        by_quantity[replacement.quantity].append((ri, replacement))
    for quantity_name, events in by_quantity.items():
        events.sort(key=lambda e: e[1].replaced_at)
        for (_, before), (ri, after) in pairwise(events):
            if after.old_serial != before.new_serial:
                problems.append(
                    ((*vp, "replacements", ri, "old_serial"),
                     f"{after.old_serial!r} is not the meter the replacement of {quantity_name} at "
                     f"{before.replaced_at.isoformat()} installed ({before.new_serial!r})")
                )  # fmt: skip
        ri, newest = events[-1]
        if device.meter is not None and newest.new_serial != device.meter.serial:
            problems.append(
                ((*vp, "replacements", ri, "new_serial"),
                 f"the last replacement of {quantity_name} installed {newest.new_serial!r}, but the meter in "
                 f"place is {device.meter.serial!r}")
            )  # fmt: skip
    return problems


# --- loading with line numbers ------------------------------------------------------------------


class _LineMap:
    """Where each node of a YAML document starts: path tuple -> 1-based line."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self.duplicates: list[tuple[Path_, int]] = []

    def walk(self, node: yaml.Node, path: Path_) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    self.duplicates.append(((*path, key), key_node.start_mark.line + 1))
                seen.add(key)
                self.walk(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def line_of(self, path: Path_) -> int:
        """The line of the deepest existing node on `path` (a missing field: its parent's line)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


# Tags of the inventory's discriminated unions (connections, faults): pydantic puts them in error paths.
_UNION_TAGS = frozenset(
    {"modbus_tcp", "modbus_rtu", "mqtt", "dropout", "stuck", "spike", "reset", "rollover", "tamper",
     "clock_skew", "slow", "exception", "malformed", "duplicate", "out_of_order"}
)  # fmt: skip


def _message(error: Any) -> str:
    """A short, imperative message for a pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if error.get("input", ...) is None and kind != "missing":
        return "is empty (give it a value)"  # `households:` with nothing after it
    simple = {
        "missing": "is required",
        "extra_forbidden": "is not a known field (misspelt?)",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "bool_parsing": "must be true or false",
        "string_type": "must be text (quote it in YAML)",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "finite_number": "must be a finite number (not .inf or .nan)",
        "union_tag_invalid": f"{str(ctx.get('discriminator', '')).strip(chr(39))} {ctx.get('tag')!r} is not "
        f"one of {ctx.get('expected_tags', '')}",
        "union_tag_not_found": f"needs a {str(ctx.get('discriminator', '')).strip(chr(39))}",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "less_than_equal": ("<=", "le"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        bound = ctx[key]
        return f"must be {sign} {bound:g}" if isinstance(bound, float) else f"must be {sign} {bound}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == CONTROL_FREE:
        return f"{error['input']!r} holds a control character"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} does not match the pattern {ctx['pattern']}"
    if kind in ("literal_error", "enum"):
        return f"{error['input']!r} is not one of {ctx.get('expected')}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return (
            "must not be empty" if ctx.get("min_length") == 1 else f"needs {ctx.get('min_length')} characters"
        )
    if kind == "string_too_long":
        return f"is {len(str(error['input']))} characters long; at most {ctx.get('max_length')}"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_type"):
        return f"{error['input']!r} is not a date like 2023-04-01"
    if kind == "timezone_aware":
        return f"{error['input']!s} needs its UTC offset, like 2025-06-10T10:00:00+08:00"
    if kind in ("datetime_parsing", "datetime_from_date_parsing", "datetime_type"):
        why = f" ({ctx['error']})" if ctx.get("error") else ""
        return f"{error['input']!r} is not a date and time like 2025-07-01T08:00:00+08:00{why}"
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def _display_path(loc: tuple[str | int, ...], lines: _LineMap) -> Path_:
    path: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and part in _UNION_TAGS and (*path, part) not in lines.lines:
            continue  # pydantic inserts the tagged union's tag; the YAML has no such level
        if isinstance(part, int) and (*path, part) not in lines.lines and (*path, str(part)) in lines.lines:
            part = str(part)  # a mapping key YAML read as a number (`7: x`): the line map has it as text
        path.append(part)
    return tuple(path)


_PLAIN_KEY = re.compile(r"[\w-]+")


def _dotted(path: Path_) -> str:
    """`districts.0.name`; a key that is empty, blank or holds a dot or colon is quoted (`' '`), so the
    path stays readable and one key is never taken for two."""
    if not path:
        return "(top)"
    return ".".join(str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(p) else repr(p) for p in path)


def _yaml_problem(name: str, text: str, exc: yaml.YAMLError) -> str:
    """`FILE:LINE: yaml: what`, at the line where a person can fix it."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"{name}:{line}: yaml: character #x{char:04x} is not allowed in YAML text"
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and problem.startswith("found unexpected end of stream"):
        # an unclosed quote or bracket: the end of the file is no place to look; where it opened is
        line, problem = context_mark.line + 1, f"{context} starting here, {problem}"
    elif context and problem.startswith("but found"):
        problem = f"{context}, {problem}"  # "but found another document" alone says too little
    return f"{name}:{line}: yaml: {problem}"


def _long_number_line(node: yaml.Node) -> int:
    """The line of the first number too long for Python to read (PyYAML raises a bare ValueError)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, yaml.ScalarNode):
            if item.tag == "tag:yaml.org,2002:int" and len(item.value) > 4000:
                return int(item.start_mark.line) + 1
        elif isinstance(item, yaml.MappingNode):
            stack.extend(v for pair in reversed(item.value) for v in reversed(pair))
        elif isinstance(item, yaml.SequenceNode):
            stack.extend(reversed(item.value))
    return 1


def load_site(path: Path | str) -> Site:
    """Load and validate an inventory file; raise InventoryError listing every problem found."""
    file = Path(path)
    name = str(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InventoryError([f"{name}:0: file: cannot read: {exc}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        why = f"not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason}); save it as UTF-8"
        raise InventoryError([f"{name}:{line}: file: {why}"]) from exc
    node = None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError([_yaml_problem(name, text, exc)]) from exc
    except RecursionError as exc:  # `[[[[...` thousands deep: PyYAML recurses (was a crash)
        raise InventoryError([f"{name}:1: yaml: nested too deeply to be an inventory"]) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (was a crash)
        line = _long_number_line(node) if node is not None else 1
        raise InventoryError([f"{name}:{line}: yaml: a number has too many digits ({exc})"]) from exc
    if node is None or not isinstance(raw, dict):
        raise InventoryError([f"{name}:1: file: an inventory is a mapping with a `districts` list"])
    lines = _LineMap()
    lines.walk(node, ())
    problems = [
        f"{name}:{line}: {_dotted(p)}: key appears twice in this mapping" for p, line in lines.duplicates
    ]
    try:
        site = Site.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            p = _display_path(tuple(error["loc"]), lines)
            problems.append(f"{name}:{lines.line_of(p)}: {_dotted(p)}: {_message(error)}")
        raise InventoryError(problems) from exc
    problems.extend(f"{name}:{lines.line_of(p)}: {_dotted(p)}: {message}" for p, message in check_rules(site))
    if problems:
        raise InventoryError(problems)
    return site
