"""What every route needs, as `Annotated` dependencies: the app context, the caller, the community the
caller asked for (404 when they may not see it), the caller's language; and the limit on failed
authentications (`refuse_blocked`, `count_failed_authentications`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Path, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select

from api.auth import BadCredential, Principal, authenticate_with_expiry
from api.cache import TtlCache
from api.db import Application, Database, Meter, MeterReplacement
from api.errors import ApiError, Lang, error_response, negotiate_lang
from api.live import Thresholds
from api.ratelimit import AuthFailures
from api.readings import SettledBuckets
from devices.profile import Profile, find_profile
from evidence.meters import with_recorded_meters
from jieshui.inventory import Community, Device, District, Facility, Site
from store.influx import InfluxStore


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _auth_failures_setting() -> int:
    from jieshui.settings import Settings

    return Settings().api_auth_failures


def _auth_window_setting() -> float:
    from jieshui.settings import Settings

    return Settings().api_auth_window_s


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
    # How long the API reuses what it looked up (docs/api.md, "Caching"); 0: looked up every request.
    # A community's status (its readings change once per poll interval), the principal of a key or
    # token (a key revoked through this process is forgotten at once, elsewhere within this time), the
    # registry (applications imported through this process show at once).
    status_cache_s: float = 0.0
    auth_cache_s: float = 0.0
    registry_cache_s: float = 0.0
    # Failed authentications an address (or a key id) may have within the window before it is answered
    # 429 (api.ratelimit); 0: no limit. By default JIESHUI_API_AUTH_FAILURES and _WINDOW_S.
    auth_failures: int = field(default_factory=_auth_failures_setting)
    auth_window_s: float = field(default_factory=_auth_window_setting)
    status_cache: TtlCache[bytes] = field(init=False)  # a community's status as JSON
    auth_cache: TtlCache[tuple[Principal, dt.datetime | None]] = field(init=False)
    registry_cache: TtlCache[Site] = field(init=False)
    failures: AuthFailures = field(init=False)  # failed authentications per address and key id

    def __post_init__(self) -> None:
        self.status_cache = TtlCache(self.status_cache_s)
        self.auth_cache = TtlCache(self.auth_cache_s)
        self.registry_cache = TtlCache(self.registry_cache_s)
        self.failures = AuthFailures(self.auth_failures, self.auth_window_s)

    def now(self) -> dt.datetime:
        return self.clock()

    def registry(self) -> Site:
        """`registry_now()`, reused for `registry_cache_s` seconds."""
        return self.registry_cache.get("registry", self.registry_now)

    def registry_now(self) -> Site:
        """The inventory plus the communities accepted from the districts' application forms (the
        programme's 附件2) that the inventory does not have yet: a new applicant is a community with no
        devices until its meters are installed and added to the inventory. A community nominated on a
        car-wash pilot list (附件1) is marked as a pilot. The meters and replacement events recorded
        through the API join their devices (evidence.meters), so verification sees them."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Application)))
            meters = list(s.scalars(select(Meter)))
            replacements = list(s.scalars(select(MeterReplacement)))
        return with_recorded_meters(merged_registry(self.site, rows), meters, replacements)


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


async def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]


def client_address(request: Request) -> str:
    """The caller's address: the peer's, or (uvicorn's --proxy-headers, on by default) the
    X-Forwarded-For of a proxy listed in FORWARDED_ALLOW_IPS (default 127.0.0.1)."""
    return request.client.host if request.client is not None else "unknown"


#: Routes answered whatever an address did: the health check (the documentation is no API route).
UNLIMITED_PATHS = frozenset({"/healthz"})


def rate_limited(ctx: ApiContext, retry_after: int) -> ApiError:
    return ApiError(
        "rate_limited",
        headers={"Retry-After": str(retry_after)},
        failures=ctx.failures.limit,
        window=f"{ctx.failures.window_s:g}",
        retry_after=retry_after,
    )


async def refuse_blocked(request: Request, ctx: CtxDep) -> None:
    """429 for an address with too many failed authentications, before anything else of the request
    is looked at (a valid key included: a blocked address cannot tell a right guess from a wrong one);
    a dependency of every route (`api.app.create_app`)."""
    if request.url.path in UNLIMITED_PATHS:
        return
    retry_after = ctx.failures.blocked(client_address(request))
    if retry_after is not None:
        raise rate_limited(ctx, retry_after)


def count_failed_authentications(app: FastAPI) -> None:
    """Count every failed authentication: `BadCredential`, from a route's key or token or from
    POST /auth/token, answered 401 (or 429 for a key id over its limit)."""

    @app.exception_handler(BadCredential)
    async def _bad_credential(request: Request, exc: BadCredential) -> JSONResponse:
        ctx: ApiContext = request.app.state.ctx
        retry_after = ctx.failures.failed(client_address(request), exc.key_id)
        if retry_after is not None:  # the key id is over its limit: its wrong secrets get 429
            error = rate_limited(ctx, retry_after)
            return error_response(request, error.code, headers=error.headers, **error.params)
        return error_response(request, exc.code, exc.details, exc.headers, **exc.params)


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, `jsk_...`")
bearer = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    auto_error=False,
    description="A token from /auth/token, or an API key sent as a bearer token",
)


async def get_principal(
    ctx: CtxDep,
    key: Annotated[str | None, Security(api_key_header)],
    token: Annotated[str | None, Security(bearer)],
) -> Principal:
    """The caller, from the auth cache or the database (in a worker thread: it blocks). Only
    successful lookups are cached, keyed by the credential's SHA-256, with the token's expiry: every
    failure reaches the database and raises `BadCredential`, which `count_failed_authentications`
    counts."""
    credential = key or token
    now = ctx.now()
    cache_key = hashlib.sha256(credential.encode()).hexdigest() if credential else ""
    cached = ctx.auth_cache.peek(cache_key) if credential else None
    if cached is not None and (cached[1] is None or now < cached[1]):
        return cached[0]

    def lookup() -> tuple[Principal, dt.datetime | None]:
        with ctx.db.session() as s:
            return authenticate_with_expiry(s, credential, now)

    found = await run_in_threadpool(lookup)
    ctx.auth_cache.put(cache_key, found)
    return found[0]


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_lang(accept_language: Annotated[str | None, Header()] = None) -> Lang:
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
    return scoped_in(ctx.registry(), principal, community_id)


def scoped_in(registry: Site, principal: Principal, community_id: str) -> Scoped:
    """`find_community` in a registry already looked up."""
    if principal.sees(community_id):
        for district, community in registry.communities():
            if community.id == community_id:
                return Scoped(district, community)
    raise ApiError("community_not_found", community=community_id)


async def get_scoped(ctx: CtxDep, principal: PrincipalDep, community_id: CommunityId) -> Scoped:
    registry = ctx.registry_cache.peek("registry")
    if registry is None:  # looking it up blocks: in a worker thread
        registry = await run_in_threadpool(ctx.registry)
    return scoped_in(registry, principal, community_id)


ScopedDep = Annotated[Scoped, Depends(get_scoped)]
