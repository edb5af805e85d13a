"""What the API accepts and returns: pydantic models at the boundary, one group per resource."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.auth import Role

Scalar = float | int | bool | str | None


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bilingual(_Out):
    zh: str
    en: str


# --- registry ------------------------------------------------------------------------------------


class DistrictPublic(_Out):
    id: str
    name: str
    name_en: str | None
    communities: list[str]  # ids the caller may see


class CommunitySummary(_Out):
    """A row of the application form (DOMAIN.md): who applies, where, how big."""

    id: str
    district: str
    name: str
    name_en: str | None
    street_town: str
    residents_committee: str
    contact: str
    phone: str
    postcode: str
    address: str
    households: int
    population: int
    application_year: int
    benchmark: bool
    car_wash_pilot: bool
    parking_spaces: int
    green_area_m2: float | None


class CatchmentPublic(_Out):
    id: str
    surface: str
    area_m2: float
    runoff_coefficient: float
    first_flush_mm: float


class DevicePublic(_Out):
    id: str
    facility: str
    kind: str
    profile: str
    protocol: str
    interval_s: float  # how often it reports: the poll interval, or the profile's report interval (MQTT)
    serial_number: str | None


class FacilityPublic(_Out):
    id: str
    kind: str
    name: str
    catchments: list[str]
    tank_capacity_m3: float | None
    rated_flow_m3h: float | None
    devices: list[str]


class ClaimPublic(_Out):
    id: str
    facility: str
    measure: str
    value: float
    unit: str
    year: int
    vehicle_class: str | None
    note: str | None


class CommunityDetail(CommunitySummary):
    catchments: list[CatchmentPublic]
    facilities: list[FacilityPublic]
    devices: list[DevicePublic]
    claims: list[ClaimPublic]


# --- live status ---------------------------------------------------------------------------------


class DeviceStatus(_Out):
    device: str
    facility: str
    kind: str
    profile: str
    last_seen: dt.datetime | None
    age_s: float | None
    interval_s: float
    silent: bool
    fault_code: int | None
    dead_letters_24h: int
    resets_7d: int
    readings: dict[str, Scalar]  # the latest point: quantity -> value


class TankStatus(_Out):
    facility: str
    device: str
    capacity_m3: float | None
    level_pct: float | None
    stored_m3: float | None
    demand_7d_m3: float
    days_of_supply: float | None  # None: no demand in the last 7 days
    minutes_to_full: float | None  # None: not rising
    state: Literal["overflowing", "about_to_overflow", "normal", "low", "about_to_run_dry", "unknown"]


class ReuseTotals(_Out):
    """Water that replaced tap water, per facility: rainwater supplied for reuse, river water pumped."""

    facility: str
    kind: str
    device: str
    quantity: str
    today_m3: float
    month_m3: float
    year_m3: float


class AlertPublic(_Out):
    id: int
    community: str
    device: str | None
    kind: str
    severity: Literal["warning", "critical"]
    message: Bilingual
    params: dict[str, Any]
    active: bool
    first_seen: dt.datetime
    last_seen: dt.datetime
    cleared_at: dt.datetime | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    acknowledge_note: str | None


class CommunityStatus(_Out):
    community: str
    name: str
    at: dt.datetime
    devices: list[DeviceStatus]
    tanks: list[TankStatus]
    reuse: list[ReuseTotals]
    reuse_today_m3: float
    reuse_month_m3: float
    reuse_year_m3: float
    alerts: list[AlertPublic]  # open alerts


class AcknowledgeIn(_In):
    note: str = Field(default="", max_length=2000)


# --- series --------------------------------------------------------------------------------------


class SeriesPoint(_Out):
    time: dt.datetime
    value: float | None


class DeviceSeries(_Out):
    device: str
    kind: str
    points: list[SeriesPoint]


class SeriesResponse(_Out):
    community: str
    quantity: str
    unit: str
    agg: str
    window: str
    start: dt.datetime
    end: dt.datetime
    series: list[DeviceSeries]


# --- verification --------------------------------------------------------------------------------

DecisionKind = Literal["accepted", "rejected", "on_site_inspection"]
Overall = Literal["verified", "partly_verified", "not_verified", "insufficient_data"]


class VerificationRunPublic(_Out):
    id: int
    community: str
    year: int
    run_at: dt.datetime
    run_by: str
    overall: Overall
    result: dict[str, Any]  # jieshui.verification/1 (docs/verification.md)


class DecisionIn(_In):
    decision: DecisionKind
    notes: str = Field(default="", max_length=10000)


class DecisionPublic(_Out):
    id: int
    community: str
    year: int
    run_id: int
    decision: DecisionKind
    notes: str
    decided_by: str
    decided_by_label: str
    decided_at: dt.datetime


class CommunityVerdict(_Out):
    community: str
    name: str
    run_id: int | None
    run_at: dt.datetime | None
    overall: Overall | None  # None: not run yet
    claims: dict[str, str]  # claim id -> verdict
    decision: DecisionPublic | None  # the latest


class DistrictVerdicts(_Out):
    district: str
    year: int
    communities: list[CommunityVerdict]


# --- keys, audit, auth ---------------------------------------------------------------------------


class KeyCreate(_In):
    role: Role
    communities: list[str] = Field(default_factory=list, max_length=1000)
    label: str = Field(default="", max_length=200)


class KeyPublic(_Out):
    id: str
    role: Role
    communities: list[str]
    label: str
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None


class KeyCreated(KeyPublic):
    key: str  # shown once; only its hash is stored


class AuditPublic(_Out):
    id: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]


class TokenResponse(_Out):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class Me(_Out):
    key_id: str
    role: Role
    communities: list[str]
    label: str


class Health(_Out):
    status: Literal["ok", "degraded"]
    influx: str
    database: str


# --- the programme: cycle, forms, evaluation, naming ---------------------------------------------


class PhasePublic(_Out):
    phase: str
    name: Bilingual
    start: dt.date
    end: dt.date
    open: bool  # today (Asia/Shanghai) is within it


class CyclePublic(_Out):
    year: int
    phases: list[PhasePublic]
    application_deadline: dt.date
    reporting_period: tuple[dt.date, dt.date]  # start, end (exclusive): what an evaluation covers
    open_now: list[str]


class WindowIn(_In):
    start: dt.date
    end: dt.date


class CycleIn(_In):
    application: WindowIn
    training: WindowIn
    guidance: WindowIn
    evaluation: WindowIn
    naming: WindowIn


class ApplicationPublic(_Out):
    id: int
    district: str
    year: int
    form: str
    seq: int
    community: str  # the registry id the row became (or matched)
    street_town: str
    name: str
    benchmark: bool
    residents_committee: str
    contact: str
    phone: str
    postcode: str
    address: str
    households: int | None
    population: int | None
    submitted_at: dt.datetime
    submitted_by: str


class CheckStep(_Out):
    """三查: filled from the verification verdicts of the reporting year."""

    run_id: int | None
    overall: Overall | None
    claims: dict[str, str]
    decision: str | None  # the latest evaluator decision on that run, if any
    notes: str


class EvaluationIn(_In):
    listen_done: bool = False
    listen_notes: str = Field(default="", max_length=10000)
    look_done: bool = False
    look_notes: str = Field(default="", max_length=10000)
    fixture_adoption_pct: float | None = Field(default=None, ge=0, le=100)
    check_notes: str = Field(default="", max_length=10000)
    assess_notes: str = Field(default="", max_length=10000)
    result: Literal["benchmark", "water_saving", "not_passed"] | None = None


class EvaluationPublic(_Out):
    community: str
    year: int
    applied_benchmark: bool
    listen_done: bool
    listen_notes: str
    look_done: bool
    look_notes: str
    fixture_adoption_pct: float | None
    check: CheckStep
    assess_notes: str
    result: Literal["benchmark", "water_saving", "not_passed"] | None
    result_name: Bilingual | None
    allowed_results: list[str]  # what `result` may be set to now
    updated_at: dt.datetime | None
    updated_by: str | None


class NamingEvidence(_Out):
    reuse_m3: float | None
    river_water_m3: float | None
    l_per_car: float | None
    coverage: float | None  # mean share of valid days over the community's meters


class NamingRow(_Out):
    community: str
    name: str
    street_town: str
    result: Literal["benchmark", "water_saving", "not_passed"] | None  # None: not evaluated yet
    result_name: Bilingual | None
    evidence: NamingEvidence
    run_id: int | None


class NamingList(_Out):
    district: str
    district_name: str
    year: int
    rows: list[NamingRow]
