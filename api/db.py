"""The API's writable state in SQL (SQLAlchemy 2): keys, tokens, alerts, verification runs, evaluator
decisions, the audit log, the evidence (meter registry, replacement events, daily digests, signing
keys and signatures) and the settings of the communities' public display pages. SQLite file by default,
PostgreSQL when `JIESHUI_DB_URL` names one; the schema is created and moved forward by Alembic
(`api/migrations`), never by `create_all`.

Times are stored as naive UTC (SQLite keeps no zone) and come back as aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from programme import forms
from programme.forms import MAX_TEXT_LENGTH

MIGRATIONS = Path(__file__).parent / "migrations"
#: The columns of a programme form a stored row keeps (programme.forms.FormRow's fields).
FORM_FIELDS = (
    "seq", "street_town", "name", "benchmark", "residents_committee", "contact", "phone", "postcode",
    "address", "households", "population",
)  # fmt: skip


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on the Python side, naive UTC in the database (the same on every engine)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """A caller's key: only the SHA-256 of its secret is kept; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the key, `jsk_<id>_...`
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | manager | evaluator
    communities: Mapped[list[str]] = mapped_column(JSON, default=list)  # managers: the communities they see
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(64))  # key id of the creator, or "cli"
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AccessToken(Base):
    """An OAuth2 bearer token issued for a key (client credentials); expires, dies with its key."""

    __tablename__ = "access_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Alert(Base):
    """A condition seen in the live data, from the first time it was seen until it cleared.

    `fingerprint` identifies the condition (community/device/kind, plus the event time for events such
    as a meter reset), so that seeing it again updates the same alert and an acknowledgement sticks.
    `open_key` is the fingerprint while the alert is open and NULL once it cleared: its unique index
    lets two requests that see a new condition at once create one alert, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_community_open", "community", "cleared_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(300), index=True)
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True, nullable=True)
    community: Mapped[str] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # figures the message quotes
    first_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledge_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class VerificationRun(Base):
    """One run of the verification engine for a community-year, with its whole result."""

    __tablename__ = "verification_runs"
    __table_args__ = (Index("ix_runs_community_year", "community", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # VerificationResult, schema jieshui.verification/1
    run_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    run_by: Mapped[str] = mapped_column(String(64))


class Decision(Base):
    """An evaluator's decision on a community-year, against the verification run they saw."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64), index=True)
    year: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("verification_runs.id"))
    decision: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(64))  # key id
    decided_by_label: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    """One write through the API (or the key CLI): who, when, what, on what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # key id, or "cli"
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CycleOverride(Base):
    """A programme year whose phases differ from the notice's pattern (programme.cycle.default_cycle)."""

    __tablename__ = "cycles"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)  # programme.cycle.Cycle
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))


class Application(Base):
    """A row of a district's form for a programme year: an application (附件2) or a car-wash pilot
    nomination (附件1). Importing a district's form replaces its previous rows of that kind and year.
    Text widths are the form's own limits (programme.forms.MAX_TEXT_LENGTH), so a form that passes the
    reader always fits."""

    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("district", "year", "form", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    district: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    form: Mapped[str] = mapped_column(String(32))  # programme.forms.FormKind
    seq: Mapped[int] = mapped_column(Integer)
    community: Mapped[str] = mapped_column(String(64), index=True)  # registry id (inventory's, or made)
    street_town: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH[forms.STREET_TOWN]))
    name: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH[forms.NAME]))
    benchmark: Mapped[bool] = mapped_column(default=False)
    residents_committee: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH[forms.RESIDENTS_COMMITTEE]))
    contact: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH[forms.CONTACT]))
    phone: Mapped[str] = mapped_column(String(40))
    postcode: Mapped[str] = mapped_column(String(6))
    address: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH[forms.ADDRESS]))
    households: Mapped[int | None] = mapped_column(Integer, nullable=True)
    population: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    submitted_by: Mapped[str] = mapped_column(String(64))

    def form_fields(self) -> dict[str, Any]:
        """The row's columns of the form, by `programme.forms.FormRow` field name."""
        return {name: getattr(self, name) for name in FORM_FIELDS}


class Evaluation(Base):
    """An evaluator's checklist for a community and programme year (listen, look, check, assess)."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("community", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    listen_done: Mapped[bool] = mapped_column(default=False)
    listen_notes: Mapped[str] = mapped_column(Text, default="")
    look_done: Mapped[bool] = mapped_column(default=False)
    look_notes: Mapped[str] = mapped_column(Text, default="")
    fixture_adoption_pct: Mapped[float | None] = mapped_column(nullable=True)
    check_notes: Mapped[str] = mapped_column(Text, default="")
    assess_notes: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str | None] = mapped_column(String(32), nullable=True)  # programme.evaluation.Result
    run_id: Mapped[int | None] = mapped_column(ForeignKey("verification_runs.id"), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_by_label: Mapped[str] = mapped_column(String(200), default="")


class Meter(Base):
    """A physical meter installed behind a device (issue 11: the meter registry). A device's meter is
    the one with no `removed_at`; a replacement closes the old row and opens a new one."""

    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("community", "device", "serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64), index=True)
    device: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(64))
    nominal_dn: Mapped[int] = mapped_column(Integer)  # nominal size, DN (mm)
    accuracy_class: Mapped[str] = mapped_column(String(16))  # e.g. "2" (GB/T 778 class 2), "1"
    installed_on: Mapped[dt.date] = mapped_column(Date)
    calibrated_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))


class MeterReplacement(Base):
    """A meter swapped on a device: the old meter's final reading and the new one's first, for one
    totalizer quantity, so consumption across the swap is known instead of guessed."""

    __tablename__ = "meter_replacements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64), index=True)
    device: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[str] = mapped_column(String(64))  # the totalizer, e.g. volume_m3
    replaced_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    old_serial: Mapped[str] = mapped_column(String(64))
    old_final_reading: Mapped[float] = mapped_column()
    new_serial: Mapped[str] = mapped_column(String(64))
    new_first_reading: Mapped[float] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))


class EvidenceDigest(Base):
    """The digest of one device's stored readings for one Asia/Shanghai day, chained to the previous
    day's (evidence.digest). Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "evidence_digests"
    __table_args__ = (UniqueConstraint("community", "device", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64), index=True)
    device: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 hex of the day's canonical readings
    chain: Mapped[str] = mapped_column(String(64))  # sha256(previous chain + digest)
    computed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class SigningKey(Base):
    """An evaluator's Ed25519 public key, registered by an admin; signatures are checked against these."""

    __tablename__ = "signing_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the raw key
    signer: Mapped[str] = mapped_column(String(200))  # who signs with it (name, organisation)
    public_key: Mapped[str] = mapped_column(String(64))  # the raw 32 bytes, base64
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    registered_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Signature(Base):
    """A detached signature of a verdict (JSON) or a report (PDF) for a community and year."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    community: Mapped[str] = mapped_column(String(64), index=True)
    year: Mapped[int] = mapped_column(Integer)
    artifact: Mapped[str] = mapped_column(String(32))  # verdict_json | report_pdf
    sha256: Mapped[str] = mapped_column(String(64))  # of the signed bytes
    fingerprint: Mapped[str] = mapped_column(ForeignKey("signing_keys.fingerprint"))
    signature: Mapped[str] = mapped_column(String(128))  # base64 of the 64-byte Ed25519 signature
    signed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))


class DisplaySetting(Base):
    """A community's public display page (api/routes/display.py): whether it is on, and the SHA-256 of
    the secret in its link (`/display/<token>`). The token is shown once, when it is made; only its hash
    is kept, as for keys, so a copy of the database opens no page."""

    __tablename__ = "display_settings"

    community: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(64))  # key id
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder, WAL and a busy timeout (threads share it)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # psycopg 3, not psycopg2
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent)."""
    command.upgrade(alembic_config(engine), "head")


class Database:
    """The engine and a session factory; `session()` commits on success and rolls back on error."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()
