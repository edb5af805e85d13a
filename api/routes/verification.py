"""Verification for evaluators: run the engine for a community-year or fetch the last run, download the
report (HTML or PDF, zh-CN by default, or en), record decisions, and list a district's verdicts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from api import reports, workflow
from api.auth import Role, audit
from api.db import Decision, VerificationRun
from api.deps import ApiContext, CtxDep, PrincipalDep, ScopedDep
from api.errors import ApiError
from api.live import local_date
from api.reports import run_public as _run_public
from api.routes.registry import get_district
from api.schemas import (
    CommunityVerdict,
    DecisionIn,
    DecisionPublic,
    DistrictVerdicts,
    VerificationRunPublic,
)
from api.workflow import claim_verdicts, overall
from evidence.jobs import check as check_evidence
from verification.engine import verify

router = APIRouter(tags=["verification"])

FIRST_YEAR = 2000
Year = Annotated[int, Path(ge=FIRST_YEAR, le=2100, description="the reporting year (Asia/Shanghai)")]


def _check_year(ctx: ApiContext, year: int) -> None:
    last = local_date(int(ctx.now().timestamp() * 1e9)).year
    if year > last:
        raise ApiError("year_out_of_range", year=year, first=FIRST_YEAR, last=last)


def _decision_public(row: Decision) -> DecisionPublic:
    return DecisionPublic(
        id=row.id,
        community=row.community,
        year=row.year,
        run_id=row.run_id,
        decision=row.decision,
        notes=row.notes,
        decided_by=row.decided_by,
        decided_by_label=row.decided_by_label,
        decided_at=row.decided_at,
    )


def _latest_run(ctx: ApiContext, community: str, year: int) -> VerificationRun | None:
    with ctx.db.session() as s:
        return workflow.latest_run(s, community, year)


def _require_run(ctx: ApiContext, community: str, year: int) -> VerificationRun:
    row = _latest_run(ctx, community, year)
    if row is None:
        raise ApiError("verification_not_run", community=community, year=year)
    return row


@router.get("/communities/{community_id}/verifications/{year}", response_model=VerificationRunPublic)
def get_verification(ctx: CtxDep, scoped: ScopedDep, year: Year) -> VerificationRunPublic:
    """The latest run for the community-year (404 `verification_not_run` before the first run)."""
    _check_year(ctx, year)
    return _run_public(_require_run(ctx, scoped.community.id, year))


@router.post(
    "/communities/{community_id}/verifications/{year}", response_model=VerificationRunPublic, status_code=201
)
def run_verification(
    ctx: CtxDep, principal: PrincipalDep, scoped: ScopedDep, year: Year
) -> VerificationRunPublic:
    """Run the verification engine on the metered data now and keep the result (evaluators, admins)."""
    principal.require(Role.EVALUATOR)
    _check_year(ctx, year)
    # the daily digests of the year, recomputed: a claim resting on a day changed since is not verified
    site = ctx.registry()  # one snapshot for both
    evidence = check_evidence(ctx.db, ctx.store, site, scoped.community.id, year)
    result = verify(ctx.store, site, scoped.community.id, year, evidence.changed_days())
    now = ctx.now()
    with ctx.db.session() as s:
        row = VerificationRun(
            community=scoped.community.id,
            year=year,
            result=result.model_dump(mode="json", by_alias=True),
            run_at=now,
            run_by=principal.key_id,
        )
        s.add(row)
        s.flush()
        audit(
            s,
            principal.key_id,
            principal.role,
            "verification.run",
            f"community/{scoped.community.id}/{year}",
            now,
            run_id=row.id,
            claims=claim_verdicts(row.result),
        )
    return _run_public(row)


_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "the evaluation report",
    },
}


@router.get(
    "/communities/{community_id}/verifications/{year}/report",
    response_class=Response,
    responses=_REPORT_RESPONSES,
)
def get_report(
    ctx: CtxDep,
    scoped: ScopedDep,
    year: Year,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
    lang: Annotated[Literal["zh-CN", "en"], Query()] = "zh-CN",
) -> Response:
    """The evaluation report of the latest run, zh-CN unless `lang=en`, listing the signatures of its
    verdict; the same bytes for the same run (a served PDF can be signed: docs/evidence.md)."""
    _check_year(ctx, year)
    row = _require_run(ctx, scoped.community.id, year)
    name = f"{scoped.community.id}-{year}-{lang}"
    if format == "html":
        return HTMLResponse(reports.report_html(ctx, row, lang), headers={"Content-Language": lang})
    body = reports.report_pdf(ctx, row, lang)
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"', "Content-Language": lang},
    )


@router.post(
    "/communities/{community_id}/verifications/{year}/decisions",
    response_model=DecisionPublic,
    status_code=201,
)
def record_decision(
    ctx: CtxDep, principal: PrincipalDep, scoped: ScopedDep, year: Year, body: DecisionIn
) -> DecisionPublic:
    """Record the evaluator's decision on the latest run, with notes; who and when are the caller and now."""
    principal.require(Role.EVALUATOR)
    _check_year(ctx, year)
    run = _require_run(ctx, scoped.community.id, year)
    now = ctx.now()
    with ctx.db.session() as s:
        row = Decision(
            community=scoped.community.id,
            year=year,
            run_id=run.id,
            decision=body.decision,
            notes=body.notes,
            decided_by=principal.key_id,
            decided_by_label=principal.label,
            decided_at=now,
        )
        s.add(row)
        s.flush()
        audit(
            s,
            principal.key_id,
            principal.role,
            "decision.record",
            f"community/{scoped.community.id}/{year}",
            now,
            decision=body.decision,
            run_id=run.id,
            decision_id=row.id,
        )
    return _decision_public(row)


@router.get("/communities/{community_id}/verifications/{year}/decisions", response_model=list[DecisionPublic])
def list_decisions(ctx: CtxDep, scoped: ScopedDep, year: Year) -> list[DecisionPublic]:
    _check_year(ctx, year)
    with ctx.db.session() as s:
        rows = s.scalars(
            select(Decision)
            .where(Decision.community == scoped.community.id, Decision.year == year)
            .order_by(Decision.id)
        )
        return [_decision_public(r) for r in rows]


@router.get("/districts/{district_id}/verdicts", response_model=DistrictVerdicts)
def district_verdicts(
    ctx: CtxDep,
    principal: PrincipalDep,
    year: Annotated[int, Query(ge=FIRST_YEAR, le=2100)],
    district_id: str = Path(min_length=1, max_length=64),
) -> DistrictVerdicts:
    """Every community of the district the caller may see, with its latest verdicts and decision."""
    district = get_district(ctx, principal, district_id)
    _check_year(ctx, year)
    names = {c.id: c.name for _, c in ctx.registry().communities()}
    out = []
    with ctx.db.session() as s:
        for cid in district.communities:
            run = workflow.latest_run(s, cid, year)
            decision = workflow.latest_decision(s, cid, year)
            claims = claim_verdicts(run.result) if run else {}
            out.append(
                CommunityVerdict(
                    community=cid,
                    name=names[cid],
                    run_id=run.id if run else None,
                    run_at=run.run_at if run else None,
                    overall=overall(list(claims.values())) if run else None,
                    claims=claims,
                    decision=_decision_public(decision) if decision else None,
                )
            )
    return DistrictVerdicts(district=district_id, year=year, communities=out)
