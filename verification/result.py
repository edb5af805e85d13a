"""The verification result: a documented, versioned JSON schema (`jieshui.verification/1`).

Every text an evaluator reads is given in zh-CN and en (`Text`). docs/verification.md describes the
fields; a change that breaks readers bumps the schema version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "jieshui.verification/1"
Verdict = Literal["verified", "partly_verified", "not_verified", "insufficient_data"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Text(_Model):
    """A finding in both languages, with a stable code for machines."""

    code: str
    zh: str
    en: str


class Gap(_Model):
    """A silence of a meter longer than two reading intervals."""

    start: str  # ISO 8601, UTC
    end: str
    hours: float


class ReplacementAudit(_Model):
    """A recorded meter swap inside the period, and what it gave (evidence.meters)."""

    replaced_at: str  # ISO 8601, UTC
    old_serial: str
    new_serial: str
    old_final_reading: float
    new_first_reading: float
    recorded_by: str
    recorded_at: str | None  # ISO 8601, UTC
    # the readings around it: the old meter's last (L) and the new meter's first (R); None when the
    # period has no reading on that side
    last_reading: float | None
    last_reading_at: str | None
    first_reading: float | None
    first_reading_at: str | None
    use: float | None  # the interval's use: (F_old - L) + (R - F_new); None without readings on both sides


class MeterAudit(_Model):
    """Data sufficiency and the meter-data audit (VEE) of one metered quantity."""

    device: str
    quantity: str
    readings: int
    expected_per_day: float
    valid_day_share: float
    month_valid_share: dict[str, float]  # "01".."12"
    sufficient: bool
    gaps: list[Gap]
    total: float  # consumption over the period, in the quantity's unit
    spike_days: list[str]  # local dates
    flat_runs: list[tuple[str, str]]  # local start date, end date (exclusive) of stuck runs
    resets: int  # drops with no replacement recorded (unexplained resets)
    rollovers: int
    duplicates: int  # readings repeating a timestamp, counted once
    excluded: float  # consumption excluded by the edit log (spikes), in the quantity's unit
    # of `total`, what rests on the edit log rather than on consecutive readings of one meter: the use
    # credited across recorded swaps (from the record) and at unexplained resets (the new reading)
    estimated: float = 0.0
    findings: list[Text]
    reset_times: list[str] = Field(default_factory=list)  # ISO 8601 UTC: first reading after each reset
    replacements: list[ReplacementAudit] = Field(default_factory=list)  # recorded swaps in the period


class MeterStatus(_Model):
    """A registered meter a claim rests on, judged against its service life or verification interval
    (JJG 162): on 31 December of the reporting year, or on the day it was removed if earlier."""

    device: str
    serial: str
    nominal_dn: int
    accuracy_class: str
    installed_on: str  # local date
    calibrated_on: str | None
    removed_at: str | None  # ISO 8601, UTC
    rule: Literal["service_life", "calibration"]
    due: str  # the last local day it may serve without replacement (service_life) or verification
    judged_on: str  # local date
    overdue: bool


class ClaimBasis(_Model):
    """What a claim's figure rests on, in its meter's quantity over the period (docs/evidence.md)."""

    device: str
    quantity: str
    unit: str
    measured: float  # from consecutive readings of one meter, as it reported them
    estimated: float  # credited by the edit log (recorded swaps, unexplained resets)
    verified: float | None  # measured + estimated, when the verdict is verified or partly verified
    evidence: Literal["intact", "changed", "not_checked"]  # the daily digests of its meter's days
    changed_days: list[str] = Field(default_factory=list)  # "<device> <local date>" changed after digested


class ClaimResult(_Model):
    """A claim's verdict with the measured figure and its uncertainty interval."""

    id: str
    measure: str
    facility: str
    claimed: float
    unit: str
    measured: float | None
    interval: tuple[float, float] | None  # measured x (1 -/+ uncertainty)
    uncertainty: float | None  # relative: meter accuracy class + missing data share
    annualized: float | None
    fraction: float | None  # measured / claimed ("more" claims) or claimed / measured ("less" claims)
    verdict: Verdict
    reasons: list[Text]
    meters: list[MeterStatus] = Field(default_factory=list)  # the registered meters of the claim's facility
    basis: ClaimBasis | None = None  # measured, estimated, verified (None: no meter data)


class Charts(_Model):
    """What the evaluation report draws (local days of the year; months 1-12)."""

    monthly: dict[str, list[float]]  # "<device>.<quantity>" -> 12 monthly totals
    daily: dict[str, list[float]]  # rain, reuse supply, make-up and tank storage per day
    coverage: dict[str, list[int]]  # device -> % of expected readings per day
    wash_histogram: dict[str, list[float]] | None  # {"edges": [...], "counts": [...]} of litres per wash


class VerificationResult(_Model):
    """Everything verified for one community and reporting year."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    community: str
    name: str
    district: str
    year: int
    period: tuple[str, str]  # local dates, end exclusive
    meters: list[MeterAudit]
    checks: list[Text]  # site-level findings (rainfall bound, treatment capacity, per-capita ...)
    figures: dict[str, float]  # headline figures (reuse_m3, net_saving_m3, efficiency ...)
    claims: list[ClaimResult]
    charts: Charts

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
