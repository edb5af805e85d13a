"""What every route needs, as `Annotated` dependencies: the app context, the caller, the community the
caller asked for (404 when they may not see it), the caller's language."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Path, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select

from api.auth import Principal, authenticate
from api.db import Application, Database
from api.errors import ApiError, Lang, negotiate_lang
from api.live import Thresholds
from api.readings import SettledBuckets
from devices.profile import Profile, find_profile
from jieshui.inventory import Community, Device, District, Facility, Site
from store.influx import InfluxStore


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ApiContext:
    """The app's long-lived collaborators; one per process, on `app.state.ctx`."""

    site: Site
    db: Database
    store: InfluxStore
    clock: Callable[[], dt.datetime] = utc_now  # tests pin "now" to the end of their backfilled data
    limits: Thresholds = field(default_factory=Thresholds)
    token_ttl_s: float = 3600.0
    max_points: int = 10_000
    application_deadline: tuple[int, int] = (10, 18)  # month, day: the notice's 18 October
    buckets: SettledBuckets = field(default_factory=SettledBuckets)  # FIRST/LAST of settled days

    def now(self) -> dt.datetime:
        return self.clock()

    def registry(self) -> Site:
        """The inventory plus the communities accepted from the districts' application forms (the
        programme's 附件2) that the inventory does not have yet: a new applicant is a community with no
        devices until its meters are installed and added to the inventory. A community nominated on a
        car-wash pilot list (附件1) is marked as a pilot."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Application)))
        return merged_registry(self.site, rows)


def community_id_for(site: Site, district_id: str, year: int, name: str) -> str:
    """The registry id of an applying community: the inventory's when it has one of that name in the
    district, else a stable id made from the name (the same on every re-import of the form)."""
    for district, community in site.communities():
        if district.id == district_id and community.name == name:
            return community.id
    return f"{district_id}-{year}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def merged_registry(site: Site, rows: list[Application]) -> Site:
    pilots = {a.community for a in rows if a.form == "car_wash_pilot"}
    known = {c.id for _, c in site.communities()}
    extra: dict[str, list[Community]] = {}
    for a in sorted(rows, key=lambda a: (a.district, a.year, a.seq)):
        if a.form != "application" or a.community in known or a.households is None or a.population is None:
            continue
        known.add(a.community)
        extra.setdefault(a.district, []).append(
            Community(
                id=a.community,
                application_year=a.year,
                households=a.households,
                population=a.population,
                **{k: v for k, v in a.form_fields().items() if k not in ("seq", "households", "population")},
            )
        )
    if not extra and not pilots:
        return site

    def marked(c: Community) -> Community:
        return c.model_copy(update={"car_wash_pilot": True}) if c.id in pilots and not c.car_wash_pilot else c

    districts = [
        d.model_copy(update={"communities": [marked(c) for c in [*d.communities, *extra.get(d.id, [])]]})
        for d in site.districts
    ]
    return site.model_copy(update={"districts": districts})


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, `jsk_...`")
bearer = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    auto_error=False,
    description="A token from /auth/token, or an API key sent as a bearer token",
)


def get_principal(
    ctx: CtxDep,
    key: Annotated[str | None, Security(api_key_header)],
    token: Annotated[str | None, Security(bearer)],
) -> Principal:
    with ctx.db.session() as s:
        return authenticate(s, key or token, ctx.now())


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_lang(accept_language: Annotated[str | None, Header()] = None) -> Lang:
    return negotiate_lang(accept_language)


LangDep = Annotated[Lang, Depends(get_lang)]

CommunityId = Annotated[str, Path(min_length=1, max_length=64, description="inventory id, e.g. xinjing-6")]


@dataclass(frozen=True)
class Scoped:
    """A community the caller may see, with its district."""

    district: District
    community: Community

    def device(self, device_id: str) -> tuple[Facility, Device, Profile]:
        for facility, device in self.community.devices():
            if device.id == device_id:
                return facility, device, find_profile(device.profile)
        raise ApiError("device_not_found", community=self.community.id, device=device_id)


def find_community(ctx: ApiContext, principal: Principal, community_id: str) -> Scoped:
    """The community, or 404 if it does not exist *or* the caller may not see it (the same answer)."""
    if principal.sees(community_id):
        for district, community in ctx.registry().communities():
            if community.id == community_id:
                return Scoped(district, community)
    raise ApiError("community_not_found", community=community_id)


def get_scoped(ctx: CtxDep, principal: PrincipalDep, community_id: CommunityId) -> Scoped:
    return find_community(ctx, principal, community_id)


ScopedDep = Annotated[Scoped, Depends(get_scoped)]
