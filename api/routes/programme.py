"""The programme's yearly cycle through the API: the cycle's phases, the districts' forms (applications,
附件2; car-wash pilots, 附件1) as XLSX or CSV, the evaluator's checklist and the naming list."""

from __future__ import annotations

import html
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api import workflow
from api.auth import Role, audit
from api.db import Application, CycleOverride, Evaluation
from api.deps import ApiContext, CtxDep, LangDep, PrincipalDep, ScopedDep
from api.errors import ApiError, ErrorDetail, Lang
from api.routes.verification import Year
from api.schemas import (
    ApplicationPublic,
    Bilingual,
    CheckStep,
    CycleIn,
    CyclePublic,
    EvaluationIn,
    EvaluationPublic,
    NamingEvidence,
    NamingList,
    NamingRow,
    PhasePublic,
)
from api.workflow import overall
from programme.cycle import PHASE_NAMES, Cycle, Phase
from programme.evaluation import RESULT_NAMES, RESULT_PROBLEMS, Result, evidence, result_problems
from programme.forms import MEDIA_TYPES, FormError, FormKind, FormProblem

router = APIRouter(tags=["programme"])

XLSX = MEDIA_TYPES["xlsx"]
MAX_FORM_BYTES = 5 * 1024 * 1024
DistrictId = Annotated[str, Path(min_length=1, max_length=64)]
ProgrammeYear = Annotated[int, Path(ge=2000, le=2100, description="the programme year (applications in it)")]
FormQuery = Annotated[Literal["application", "car_wash_pilot"], Query(description="附件2 or 附件1")]


def result_name(result: Result | None) -> Bilingual | None:
    return None if result is None else Bilingual(zh=RESULT_NAMES[result][0], en=RESULT_NAMES[result][1])


def _cycle_public(cycle: Cycle, ctx: ApiContext) -> CyclePublic:
    today = workflow.local_today(ctx.now())
    phases = [
        PhasePublic(
            phase=str(p),
            name=Bilingual(zh=PHASE_NAMES[p][0], en=PHASE_NAMES[p][1]),
            start=cycle.window(p).start,
            end=cycle.window(p).end,
            open=cycle.window(p).contains(today),
        )
        for p in Phase
    ]
    return CyclePublic(
        year=cycle.year,
        phases=phases,
        application_deadline=cycle.deadline,
        reporting_period=cycle.reporting_period,
        open_now=[str(p) for p in cycle.open_phases(today)],
    )


@router.get("/cycles", response_model=list[CyclePublic])
def current_cycles(ctx: CtxDep, principal: PrincipalDep) -> list[CyclePublic]:
    """The cycles with a phase open today (last year's evaluation and this year's applications overlap
    nothing, but last year's guidance runs into January)."""
    year = workflow.local_today(ctx.now()).year
    with ctx.db.session() as s:
        cycles = [workflow.cycle_for(s, y, ctx.application_deadline) for y in (year - 1, year)]
    return [_cycle_public(c, ctx) for c in cycles if c.open_phases(workflow.local_today(ctx.now()))]


@router.get("/cycles/{year}", response_model=CyclePublic)
def get_cycle(ctx: CtxDep, principal: PrincipalDep, year: ProgrammeYear) -> CyclePublic:
    with ctx.db.session() as s:
        return _cycle_public(workflow.cycle_for(s, year, ctx.application_deadline), ctx)


@router.put("/cycles/{year}", response_model=CyclePublic)
def set_cycle(ctx: CtxDep, principal: PrincipalDep, year: ProgrammeYear, body: CycleIn) -> CyclePublic:
    """Set a programme year's phase dates (admins), e.g. another application deadline."""
    principal.require()
    try:
        cycle = Cycle(year=year, **body.model_dump())
    except ValidationError as exc:
        raise ApiError("invalid_cycle", reason="; ".join(str(e["msg"]) for e in exc.errors())) from exc
    now = ctx.now()
    with ctx.db.session() as s:
        row = s.get(CycleOverride, year)
        definition = cycle.model_dump(mode="json")
        if row is None:
            s.add(
                CycleOverride(year=year, definition=definition, updated_at=now, updated_by=principal.key_id)
            )
        else:
            row.definition, row.updated_at, row.updated_by = definition, now, principal.key_id
        audit(s, principal.key_id, principal.role, "cycle.set", f"cycle/{year}", now, cycle=definition)
    return _cycle_public(cycle, ctx)


# --- forms ---------------------------------------------------------------------------------------


async def _form_body(request: Request) -> bytes:
    """The uploaded form, refused (413) as soon as it is known to exceed MAX_FORM_BYTES: by its declared
    length before reading anything, else while it streams in (chunked uploads declare none)."""
    too_large = ApiError("payload_too_large", limit_mb=MAX_FORM_BYTES // 1024 // 1024)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise too_large
    return bytes(body)


def _public(a: Application) -> ApplicationPublic:
    return ApplicationPublic(
        id=a.id, district=a.district, year=a.year, form=a.form, community=a.community,
        submitted_at=a.submitted_at, submitted_by=a.submitted_by, **a.form_fields(),
    )  # fmt: skip


def problem_details(problems: list[FormProblem], lang: Lang) -> list[ErrorDetail]:
    """Form problems as error details: `loc` is [cell or row, column], the message in the caller's lang."""
    out = []
    for p in problems:
        where: list[str | int] = [p.cell or (f"row {p.row}" if p.row is not None else "form")]
        if p.column:
            where.append(p.column)
        out.append(ErrorDetail(loc=where, type=p.code, message=p.zh if lang == "zh-CN" else p.en))
    return out


_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            XLSX: {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/districts/{district_id}/forms/{year}", response_model=list[ApplicationPublic], openapi_extra=_FORM_BODY
)
def import_form(
    ctx: CtxDep,
    principal: PrincipalDep,
    lang: LangDep,
    district_id: DistrictId,
    year: ProgrammeYear,
    data: Annotated[bytes, Depends(_form_body)],
    form: FormQuery = "application",
    format: Annotated[Literal["xlsx", "csv"], Query()] = "xlsx",
) -> list[ApplicationPublic]:
    """Import a district's form for the programme year (admins, for the district's office): every rule
    is checked (docs/programme.md) and the whole form is refused, with every problem's row and column,
    if one breaks; else it replaces the district's previous form of that kind and year. An accepted
    application becomes a community of the registry."""
    principal.require()
    try:
        with ctx.db.session() as s:
            rows = workflow.import_form(
                s,
                ctx.site,
                district_id,
                year,
                FormKind(form),
                data,
                format,
                ctx.now(),
                principal.key_id,
                str(principal.role),
                ctx.application_deadline,
            )
            out = [_public(a) for a in rows]
    except FormError as exc:
        err = ApiError("invalid_form", count=len(exc.problems))
        err.details = problem_details(exc.problems, lang)
        raise err from exc
    ctx.registry_cache.invalidate("registry")  # the accepted applications join the registry now
    return out


_EXPORT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the form as XLSX or CSV (format=), or its rows as JSON",
        "content": {
            XLSX: {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/districts/{district_id}/forms/{year}", response_model=list[ApplicationPublic], responses=_EXPORT
)
def export_form(
    ctx: CtxDep,
    principal: PrincipalDep,
    district_id: DistrictId,
    year: ProgrammeYear,
    form: FormQuery = "application",
    format: Annotated[Literal["json", "xlsx", "csv"], Query()] = "json",
) -> list[ApplicationPublic] | Response:
    """A district's form for the year (admins, evaluators; a manager sees only their communities' rows)."""
    district = workflow.find_district(ctx.site, district_id)
    if not any(principal.sees(c.id) for c in workflow.find_district(ctx.registry(), district_id).communities):
        raise ApiError("district_not_found", district=district_id)  # a manager of none of its communities
    with ctx.db.session() as s:
        rows = [
            a for a in workflow.form_rows(s, district_id, year, FormKind(form)) if principal.sees(a.community)
        ]
    if format == "json":
        return [_public(a) for a in rows]
    body = workflow.export_form(rows, FormKind(form), district, year, format)
    name = f"{district_id}-{year}-{form}.{format}"
    media = XLSX if format == "xlsx" else "text/csv; charset=utf-8"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- evaluation ----------------------------------------------------------------------------------


def _evaluation_public(ctx: ApiContext, community_id: str, year: int) -> EvaluationPublic:
    with ctx.db.session() as s:
        row = workflow.evaluation_row(s, community_id, year)
        run = workflow.latest_run(s, community_id, year)
        decision = workflow.latest_decision(s, community_id, year)
        benchmark = workflow.applied_benchmark(s, ctx.registry(), community_id, year)
    claims = workflow.claim_verdicts(run.result) if run else {}
    run_overall = overall(list(claims.values())) if run else None
    fixtures = row.fixture_adoption_pct if row else None
    allowed = [str(r) for r in Result if not result_problems(r, fixtures, run_overall, benchmark, year)]
    result = Result(row.result) if row and row.result else None
    return EvaluationPublic(
        community=community_id,
        year=year,
        applied_benchmark=benchmark,
        listen_done=row.listen_done if row else False,
        listen_notes=row.listen_notes if row else "",
        look_done=row.look_done if row else False,
        look_notes=row.look_notes if row else "",
        fixture_adoption_pct=fixtures,
        check=CheckStep(
            run_id=run.id if run else None,
            overall=run_overall,
            claims=claims,
            decision=decision.decision if decision else None,
            notes=row.check_notes if row else "",
        ),
        assess_notes=row.assess_notes if row else "",
        result=str(result) if result else None,
        result_name=result_name(result),
        allowed_results=allowed,
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by if row else None,
    )


@router.get("/communities/{community_id}/evaluations/{year}", response_model=EvaluationPublic)
def get_evaluation(ctx: CtxDep, scoped: ScopedDep, year: Year) -> EvaluationPublic:
    """The checklist (listen, look, check, assess) of the programme year whose evaluation covers the
    reporting year `year`; "check" comes from the verification verdicts."""
    return _evaluation_public(ctx, scoped.community.id, year)


@router.put("/communities/{community_id}/evaluations/{year}", response_model=EvaluationPublic)
def set_evaluation(
    ctx: CtxDep, principal: PrincipalDep, lang: LangDep, scoped: ScopedDep, year: Year, body: EvaluationIn
) -> EvaluationPublic:
    """Fill in the checklist (evaluators, admins); a result must meet its rules (docs/programme.md)."""
    principal.require(Role.EVALUATOR)
    cid = scoped.community.id
    now = ctx.now()
    with ctx.db.session() as s:
        run = workflow.latest_run(s, cid, year)
        run_overall = overall(list(workflow.claim_verdicts(run.result).values())) if run else None
        if body.result is not None:
            result = Result(body.result)
            benchmark = workflow.applied_benchmark(s, ctx.registry(), cid, year)
            problems = result_problems(result, body.fixture_adoption_pct, run_overall, benchmark, year)
            if problems:
                texts = [
                    RESULT_PROBLEMS[code][0 if lang == "zh-CN" else 1].format(**p) for code, p in problems
                ]
                err = ApiError("result_not_allowed", result=str(result), reasons="; ".join(texts))
                err.details = [
                    ErrorDetail(loc=["body", "result"], type=code, message=t)
                    for (code, _), t in zip(problems, texts, strict=True)
                ]
                raise err
        row = workflow.evaluation_row(s, cid, year)
        if row is None:
            row = Evaluation(community=cid, year=year, updated_at=now, updated_by=principal.key_id)
            s.add(row)
        for key, value in body.model_dump().items():
            setattr(row, key, value)
        row.run_id = run.id if run else None
        row.updated_at, row.updated_by, row.updated_by_label = now, principal.key_id, principal.label
        audit(
            s,
            principal.key_id,
            principal.role,
            "evaluation.set",
            f"community/{cid}/{year}",
            now,
            **body.model_dump(),
            run_id=row.run_id,
        )
    return _evaluation_public(ctx, cid, year)


# --- naming list ---------------------------------------------------------------------------------

NAMING_HEAD_ZH = [
    "序号",
    "小区名称",
    "街道/镇",
    "考评结果",
    "雨水回用量 m³",
    "河道取水量 m³",
    "洗车用水 升/辆",
    "数据覆盖率",
]
NAMING_HEAD_EN = [
    "No.",
    "Community",
    "Street/town",
    "Result",
    "Rainwater reused m3",
    "River water m3",
    "Car wash L/car",
    "Data coverage",
]
ORDER = {"benchmark": 0, "water_saving": 1, "not_passed": 2, None: 3}


def naming_list(ctx: ApiContext, principal: Any, district_id: str, year: int) -> NamingList:
    site = ctx.registry()
    district = workflow.find_district(site, district_id)
    visible = [c for c in district.communities if principal.sees(c.id)]
    if not visible:
        raise ApiError("district_not_found", district=district_id)
    rows = []
    with ctx.db.session() as s:
        for c in visible:
            ev = workflow.evaluation_row(s, c.id, year)
            run = workflow.latest_run(s, c.id, year)
            result = Result(ev.result) if ev and ev.result else None
            figures = (
                evidence(run.result)
                if run
                else dict.fromkeys(("reuse_m3", "river_water_m3", "l_per_car", "coverage"))
            )
            rows.append(
                NamingRow(
                    community=c.id,
                    name=c.name,
                    street_town=c.street_town,
                    result=str(result) if result else None,
                    result_name=result_name(result),
                    evidence=NamingEvidence(**figures),
                    run_id=run.id if run else None,
                )
            )
    rows.sort(key=lambda r: (ORDER[r.result], r.community))
    return NamingList(district=district.id, district_name=district.name, year=year, rows=rows)


def _naming_xlsx(naming: NamingList) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None  # noqa: S101 (a new workbook has its sheet)
    ws.title = str(naming.year)
    ws.append([f"{naming.district_name} {naming.year} 年度节水型小区考评结果"])
    ws.append(
        [
            "序号",
            "小区名称",
            "街道/镇",
            "考评结果",
            "雨水回用量（m³）",
            "河道取水量（m³）",
            "洗车用水（升/辆）",
            "数据覆盖率",
        ]
    )
    for i, r in enumerate(naming.rows, start=1):
        e = r.evidence
        ws.append(
            [
                i,
                r.name,
                r.street_town,
                r.result_name.zh if r.result_name else "未评定",
                e.reuse_m3,
                e.river_water_m3,
                e.l_per_car,
                e.coverage,
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _result_text(row: NamingRow, zh: bool) -> str:
    if row.result_name is None:
        return "未评定" if zh else "not evaluated"
    return row.result_name.zh if zh else row.result_name.en


def _naming_html(naming: NamingList, lang: Lang) -> str:
    zh = lang == "zh-CN"
    head = NAMING_HEAD_ZH if zh else NAMING_HEAD_EN

    def cell(x: float | None, fmt: str) -> str:
        return "–" if x is None else format(x, fmt)

    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                i,
                r.name,
                r.street_town,
                _result_text(r, zh),
                cell(r.evidence.reuse_m3, ".1f"),
                cell(r.evidence.river_water_m3, ".1f"),
                cell(r.evidence.l_per_car, ".2f"),
                cell(r.evidence.coverage, ".0%"),
            )
        )
        + "</tr>"
        for i, r in enumerate(naming.rows, start=1)
    )
    title = (
        f"{naming.district_name} {naming.year} 年度节水型小区考评结果"
        if zh
        else f"{naming.district_name}: water-saving communities of {naming.year}, evaluation results"
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:'Noto Sans CJK SC',sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px}@media print{body{margin:0}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + f"</tr></thead><tbody>{body}</tbody></table></body></html>"
    )


_NAMING: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, XLSX (format=xlsx) or a printable page (format=html, zh-CN by default)",
        "content": {
            XLSX: {"schema": {"type": "string", "format": "binary"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}


@router.get("/districts/{district_id}/naming/{year}", response_model=NamingList, responses=_NAMING)
def get_naming(
    ctx: CtxDep,
    principal: PrincipalDep,
    district_id: DistrictId,
    year: Year,
    format: Annotated[Literal["json", "xlsx", "html"], Query()] = "json",
    lang: Annotated[Literal["zh-CN", "en"], Query()] = "zh-CN",
) -> NamingList | Response:
    """The year's results of the district's communities, benchmark first, with each community's measured
    evidence (reuse m3, river water m3, L per car, data coverage) from its latest verification run."""
    naming = naming_list(ctx, principal, district_id, year)
    if format == "json":
        return naming
    if format == "html":
        return HTMLResponse(_naming_html(naming, lang), headers={"Content-Language": lang})
    disposition = f'attachment; filename="{district_id}-{year}-naming.xlsx"'
    return Response(_naming_xlsx(naming), media_type=XLSX, headers={"Content-Disposition": disposition})
