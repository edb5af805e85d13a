"""Daily digests of the readings and their check (evidence.digest, docs/evidence.md): every role reads
a community's evidence check (a manager their own communities'); admins run the digest job."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import audit
from api.deps import CtxDep, PrincipalDep, ScopedDep
from api.routes.verification import Year, _check_year
from evidence.jobs import EvidenceReport, check, record_digests, settled_through
from jieshui.inventory import SHANGHAI

router = APIRouter(tags=["evidence"])


class DigestRun(BaseModel):
    """What a run of the digest job added."""

    community: str
    through: dt.date
    added: dict[str, int]  # device -> days digested now


@router.get("/communities/{community_id}/evidence/{year}", response_model=EvidenceReport)
def get_evidence(ctx: CtxDep, scoped: ScopedDep, year: Year) -> EvidenceReport:
    """Recompute the year's digested days from InfluxDB: every device and day whose readings were edited,
    deleted or inserted since they were digested, and any digest row that no longer chains."""
    _check_year(ctx, year)
    return check(ctx.db, ctx.store, ctx.registry(), scoped.community.id, year)


@router.post("/communities/{community_id}/digests", response_model=DigestRun)
def run_digests(
    ctx: CtxDep,
    principal: PrincipalDep,
    scoped: ScopedDep,
    through: Annotated[dt.date | None, Query(description="last day (default: the last settled day)")] = None,
) -> DigestRun:
    """Digest the community's settled days not digested yet (admins; the daily job does it too)."""
    principal.require()
    now = ctx.now()
    last = settled_through(now.astimezone(SHANGHAI).date())
    day = min(through or last, last)  # a day the collector may still add to is never digested
    added = record_digests(ctx.db, ctx.store, ctx.registry(), scoped.community.id, day, now)
    with ctx.db.session() as s:
        audit(s, principal.key_id, principal.role, "evidence.digest", f"community/{scoped.community.id}", now,
              through=day.isoformat(), added=added)  # fmt: skip
    return DigestRun(community=scoped.community.id, through=day, added=added)
