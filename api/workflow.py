"""The programme's workflow state in SQL, shared by the API routes and the `jieshui applications`
command: cycles, the districts' forms (import replaces, export reads), evaluations and the naming list.
The rules themselves are pure, in `programme/`."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.auth import audit
from api.db import Application, CycleOverride, Decision, Evaluation, VerificationRun
from api.deps import community_id_for
from api.errors import ApiError
from api.live import NS, local_date
from api.schemas import Overall
from jieshui.inventory import District, Site
from programme.cycle import Cycle, default_cycle
from programme.forms import FormKind, FormLimits, FormRow, read_form, write_form

Fmt = Literal["xlsx", "csv"]


def cycle_for(session: Session, year: int, deadline: tuple[int, int]) -> Cycle:
    """The year's cycle: the stored override, else the notice's pattern with the configured deadline."""
    row = session.get(CycleOverride, year)
    return Cycle.model_validate(row.definition) if row is not None else default_cycle(year, deadline)


def local_today(now: dt.datetime) -> dt.date:
    return local_date(int(now.timestamp() * NS))


def find_district(site: Site, district_id: str) -> District:
    for d in site.districts:
        if d.id == district_id:
            return d
    raise ApiError("district_not_found", district=district_id)


def import_form(
    session: Session,
    site: Site,
    district_id: str,
    year: int,
    kind: FormKind,
    data: bytes,
    fmt: Fmt,
    now: dt.datetime,
    actor: str,
    role: str,
    deadline: tuple[int, int],
    limits: FormLimits | None = None,
) -> list[Application]:
    """Validate a district's form and replace its rows of that kind and year; all or nothing.

    Raises ApiError `application_closed` after the cycle's deadline (Asia/Shanghai) and
    `programme.forms.FormError` (every problem, with row and column) when the form breaks a rule.
    """
    district = find_district(site, district_id)
    cycle = cycle_for(session, year, deadline)
    today = local_today(now)
    if today > cycle.deadline:
        raise ApiError(
            "application_closed", year=year, deadline=cycle.deadline.isoformat(), today=today.isoformat()
        )
    rows = read_form(data, fmt, kind, district.name, limits or FormLimits())
    session.execute(
        delete(Application).where(
            Application.district == district_id, Application.year == year, Application.form == str(kind)
        )
    )
    stored = [_application(site, district_id, year, kind, r, now, actor) for r in rows]
    session.add_all(stored)
    session.flush()
    audit(
        session,
        actor,
        role,
        f"{kind}.import",
        f"district/{district_id}/{year}",
        now,
        rows=len(stored),
        communities=[a.community for a in stored],
    )
    return stored


def _application(
    site: Site, district_id: str, year: int, kind: FormKind, row: FormRow, now: dt.datetime, actor: str
) -> Application:
    community = community_id_for(site, district_id, year, row.name)
    return Application(
        district=district_id, year=year, form=str(kind), community=community, submitted_at=now,
        submitted_by=actor, **row.model_dump(),
    )  # fmt: skip


def form_rows(session: Session, district_id: str, year: int, kind: FormKind) -> list[Application]:
    return list(
        session.scalars(
            select(Application)
            .where(
                Application.district == district_id, Application.year == year, Application.form == str(kind)
            )
            .order_by(Application.seq, Application.id)
        )
    )


def export_form(rows: list[Application], kind: FormKind, district: District, year: int, fmt: Fmt) -> bytes:
    form = [FormRow(**a.form_fields()) for a in rows]
    return write_form(form, fmt, kind, district.name, year)


def applied_benchmark(session: Session, site: Site, community_id: str, year: int) -> bool:
    """Whether the community applied as a benchmark (示范/标杆) for the programme year: its row of the
    district's form, else the inventory's application fields."""
    row = session.scalars(
        select(Application).where(
            Application.community == community_id, Application.year == year, Application.form == "application"
        )
    ).first()
    if row is not None:
        return row.benchmark
    for _, c in site.communities():
        if c.id == community_id:
            return c.benchmark and c.application_year == year
    return False


def latest_run(session: Session, community_id: str, year: int) -> VerificationRun | None:
    return session.scalars(
        select(VerificationRun)
        .where(VerificationRun.community == community_id, VerificationRun.year == year)
        .order_by(VerificationRun.id.desc())
        .limit(1)
    ).first()


def latest_decision(session: Session, community_id: str, year: int) -> Decision | None:
    return session.scalars(
        select(Decision)
        .where(Decision.community == community_id, Decision.year == year)
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def evaluation_row(session: Session, community_id: str, year: int) -> Evaluation | None:
    return session.scalars(
        select(Evaluation).where(Evaluation.community == community_id, Evaluation.year == year)
    ).first()


def overall(verdicts: list[str]) -> Overall:
    """One word for a community-year: verified only if every claim is; any refuted claim refutes it;
    else missing data says so; else partly."""
    if verdicts and all(v == "verified" for v in verdicts):
        return "verified"
    if "not_verified" in verdicts:
        return "not_verified"
    if not verdicts or "insufficient_data" in verdicts:
        return "insufficient_data"
    return "partly_verified"


def claim_verdicts(result: dict[str, Any]) -> dict[str, str]:
    return {str(c["id"]): str(c["verdict"]) for c in result.get("claims", [])}
