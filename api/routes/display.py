"""Community display pages: a public, read-only page per community for an LED screen or a kiosk in the
estate (api/display.py makes it), served under an unguessable link to whoever has the link, with no key.

An admin turns a community's page on or off (PUT /communities/{id}/display) and may replace its link
(POST /communities/{id}/display/token), as may a manager of the community (whose screens they run);
every role reads whether it is on (a manager their own communities'). The link is `/display/<token>`,
with a token of 192 random bits (`jsd_...`): it is shown once, in the answer that made it, and only its
SHA-256 is stored, as for keys (a copy of the database opens no page; a lost link is replaced, not read
back). The page is looked up by that hash, so the comparison never runs on the secret itself. An unknown
token, and the token of a page that is off, are the same 404 `display_not_found`.

The public routes read no credential (a key sent along is ignored: no failed authentication is counted,
and no key is confirmed or refused), and an address blocked for failed authentications is refused
before the token is looked at (api.deps.refuse_blocked), so a blocked address cannot tell a valid link
from an invalid one either. A store that does not answer is 503 `display_unavailable` without the
store's address (the API's usual 503 names it, which a public page must not).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api import display, readings
from api.auth import Role, audit
from api.cache import TtlCache
from api.db import DisplaySetting
from api.deps import ApiContext, CtxDep, PrincipalDep, Scoped, ScopedDep
from api.errors import ApiError, Lang
from api.live import NS, local_date, local_midnight_ns, period_totals
from api.routes.status import _status_json
from api.schemas import CommunityStatus
from devices.profile import DeviceKind, find_profile
from jieshui.errors import StoreError
from jieshui.inventory import VehicleClass

router = APIRouter(tags=["display"])

TOKEN_PREFIX = "jsd_"  # noqa: S105 (a prefix, which the log masking looks for)
TOKEN_BYTES = 24  # 192 bits
VEHICLE_CLASSES = tuple(str(v) for v in VehicleClass)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- settings (keys) ---------------------------------------------------------------------------------


class DisplayIn(BaseModel):
    """Turn the page on or off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class DisplayPublic(BaseModel):
    """A community's display page. `path` and `link` (the page's URL) are given only in the answer
    that made its token: the first time it is turned on, and when the link is replaced."""

    model_config = ConfigDict(extra="forbid")

    community: str
    enabled: bool
    token_created_at: dt.datetime | None  # None: no link made yet
    created_at: dt.datetime | None
    created_by: str | None
    updated_at: dt.datetime | None
    updated_by: str | None
    path: str | None = None
    link: str | None = None


def _public(community: str, row: DisplaySetting | None, request: Request, token: str | None) -> DisplayPublic:
    if row is None:
        return DisplayPublic(
            community=community, enabled=False, token_created_at=None, created_at=None, created_by=None,
            updated_at=None, updated_by=None,
        )  # fmt: skip
    out = DisplayPublic(
        community=community, enabled=row.enabled, token_created_at=row.token_created_at,
        created_at=row.created_at, created_by=row.created_by, updated_at=row.updated_at,
        updated_by=row.updated_by,
    )  # fmt: skip
    if token is not None:
        out.path = request.url_for("display_page", token=token).path
        out.link = str(request.url_for("display_page", token=token))
    return out


def _new_row(community: str, token: str, now: dt.datetime, by: str) -> DisplaySetting:
    return DisplaySetting(
        community=community, enabled=False, token_sha256=token_sha256(token), token_created_at=now,
        created_at=now, created_by=by, updated_at=now, updated_by=by,
    )  # fmt: skip


@router.get("/communities/{community_id}/display", response_model=DisplayPublic)
def get_display(ctx: CtxDep, request: Request, scoped: ScopedDep) -> DisplayPublic:
    """Whether the community's display page is on, and since when (every role; managers their own
    communities). The link itself is never shown again after the answer that made it."""
    with ctx.db.session() as s:
        row = s.get(DisplaySetting, scoped.community.id)
        return _public(scoped.community.id, row, request, None)


@router.put("/communities/{community_id}/display", response_model=DisplayPublic)
def set_display(
    ctx: CtxDep, request: Request, principal: PrincipalDep, scoped: ScopedDep, body: DisplayIn
) -> DisplayPublic:
    """Turn the community's display page on or off (admins). The first time it is turned on, its link
    is made and shown in this answer, once; turned off and on again, the page keeps its link, so the
    screens set up with it show it again."""
    principal.require()
    now = ctx.now()
    community = scoped.community.id
    token = None
    with ctx.db.session() as s:
        row = s.get(DisplaySetting, community)
        if row is None:
            token = new_token()
            row = _new_row(community, token, now, principal.key_id)
            s.add(row)
        row.enabled, row.updated_at, row.updated_by = body.enabled, now, principal.key_id
        action = "display.enable" if body.enabled else "display.disable"
        audit(s, principal.key_id, principal.role, action, f"community/{community}", now,
              link_made=token is not None)  # fmt: skip
        s.flush()
        return _public(community, row, request, token)


@router.post("/communities/{community_id}/display/token", response_model=DisplayPublic)
def replace_display_link(
    ctx: CtxDep, request: Request, principal: PrincipalDep, scoped: ScopedDep
) -> DisplayPublic:
    """Make a new link for the community's display page, shown in this answer, once; the old link
    answers 404 from now on (admins, and managers of the community). The page stays on or off as it
    was (a page never turned on gets its link and stays off)."""
    principal.require(Role.MANAGER)
    now = ctx.now()
    community = scoped.community.id
    token = new_token()
    with ctx.db.session() as s:
        row = s.get(DisplaySetting, community)
        if row is None:
            row = _new_row(community, token, now, principal.key_id)
            s.add(row)
        else:
            row.token_sha256, row.token_created_at = token_sha256(token), now
            row.updated_at, row.updated_by = now, principal.key_id
        audit(s, principal.key_id, principal.role, "display.new_link", f"community/{community}", now,
              enabled=row.enabled)  # fmt: skip
        s.flush()
        return _public(community, row, request, token)


# --- the public page ---------------------------------------------------------------------------------

Token = Annotated[str, Path(description="the secret of the page's link (`jsd_...`)")]
PageLang = Annotated[Lang, Query(description="the page's language: zh-CN (default) or en")]


def _enabled_community(ctx: ApiContext, token: str) -> Scoped:
    """The community whose page is on under this token, or 404 (unknown token, page off, community no
    longer in the registry: one answer)."""
    with ctx.db.session() as s:
        community = s.scalar(
            select(DisplaySetting.community).where(
                DisplaySetting.token_sha256 == token_sha256(token), DisplaySetting.enabled.is_(True)
            )
        )
    if community is not None:
        for district, c in ctx.registry().communities():
            if c.id == community:
                return Scoped(district, c)
    raise ApiError("display_not_found", headers=display.HEADERS)


def _wash_totals(ctx: ApiContext, scoped: Scoped, now_ns: int) -> display.WashTotals | None:
    """The community's car washes this month and this year, every car-wash unit together; None
    without a unit."""
    units = [
        (d, p)
        for _, d in scoped.community.devices()
        if (p := find_profile(d.profile)).kind is DeviceKind.CAR_WASH
    ]
    if not units:
        return None
    year_start = local_midnight_ns(local_date(now_ns).replace(month=1, day=1))
    month: dict[str, float] = {}
    year: dict[str, float] = {}
    fresh_month = fresh_year = 0.0
    for device, profile in units:
        per_class = readings.washes_per_day(
            ctx.store, profile, scoped.community.id, device.id, VEHICLE_CLASSES, year_start, now_ns
        )
        for cls, (days, washes, litres) in per_class.items():
            n = period_totals(days, washes, now_ns)
            fresh = period_totals(days, litres, now_ns)
            month[cls] = month.get(cls, 0.0) + n.month
            year[cls] = year.get(cls, 0.0) + n.year
            fresh_month += fresh.month
            fresh_year += fresh.year
    return display.WashTotals(month, year, fresh_month, fresh_year)


#: A page's figures, what it says besides them, and when the status they come from was evaluated.
Figures = tuple[display.DisplayNumbers, display.PageFacts, dt.datetime]


def _figures_cache(request: Request, ctx: ApiContext) -> TtlCache[Figures]:
    """The pages' figures per community, reused as long as a status is (JIESHUI_API_STATUS_CACHE_S)."""
    cache: TtlCache[Figures] | None = getattr(request.app.state, "display_cache", None)
    if cache is None:
        cache = request.app.state.display_cache = TtlCache(ctx.status_cache_s)
    return cache


def _figures(request: Request, ctx: ApiContext, scoped: Scoped) -> Figures:
    """The page's figures: the status the API serves (the same cache, so the same numbers as GET
    /communities/{id}/status), the car washes evaluated at the status' own time."""

    def compute() -> Figures:
        status = CommunityStatus.model_validate_json(_status_json(ctx, scoped))
        now_ns = int(status.at.timestamp() * NS)
        washes = _wash_totals(ctx, scoped, now_ns)
        year = local_date(now_ns).year
        figures, facts = display.numbers(status, scoped.community, washes, year)
        return figures, facts, status.at

    try:
        return _figures_cache(request, ctx).get(scoped.community.id, compute)
    except StoreError as exc:  # the usual 503 names the store's address: not on a public page
        raise ApiError("display_unavailable", headers={**display.HEADERS, "Retry-After": "60"}) from exc


@router.get(
    "/display/{token}",
    response_class=Response,  # (HTMLResponse would document the JSON errors as text/html too)
    name="display_page",
    responses={200: {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
)
def display_page(ctx: CtxDep, request: Request, token: Token, lang: PageLang = "zh-CN") -> Response:
    """A community's display page for a screen in the estate (no key: the link is the secret), in
    zh-CN or en (`?lang=en`); it fetches its figures again every minute. Never indexed or cached."""
    scoped = _enabled_community(ctx, token)
    figures, facts, at = _figures(request, ctx, scoped)
    return HTMLResponse(
        display.render(figures, facts, at, lang),
        headers={**display.HEADERS, "Content-Security-Policy": display.CONTENT_SECURITY_POLICY,
                 "Content-Language": lang},
    )  # fmt: skip


@router.get("/display/{token}/data", response_model=display.DisplayFigures)
def display_data(ctx: CtxDep, request: Request, token: Token, lang: PageLang = "zh-CN") -> Response:
    """The display page's figures and their texts in `lang` (what the page's script fetches)."""
    scoped = _enabled_community(ctx, token)
    figures, facts, at = _figures(request, ctx, scoped)
    body = display.figures_payload(figures, facts, at, lang).model_dump_json()
    return Response(
        body, media_type="application/json", headers={**display.HEADERS, "Content-Language": lang}
    )
