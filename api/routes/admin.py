"""Keys, tokens, the audit log, who-am-I and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api.auth import Role, audit, check_key, create_key, issue_token, list_keys, revoke_key
from api.db import ApiKey, AuditEntry
from api.deps import CtxDep, PrincipalDep
from api.errors import ApiError
from api.schemas import AuditPublic, Health, KeyCreate, KeyCreated, KeyPublic, Me, TokenResponse
from jieshui.errors import StoreError
from jieshui.inventory import Site

router = APIRouter()


def key_public(row: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=row.id,
        role=Role(row.role),
        communities=list(row.communities),
        label=row.label,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


def check_scope(site: Site, role: Role, communities: list[str]) -> None:
    """A manager key names existing communities; other roles name none."""
    if role is not Role.MANAGER:
        if communities:
            raise ApiError("communities_not_allowed")
        return
    known = {c.id for _, c in site.communities()}
    unknown = sorted(set(communities) - known)
    if not communities or unknown:
        raise ApiError("invalid_communities", unknown=", ".join(unknown) or "-")


@router.post("/keys", response_model=KeyCreated, status_code=201, tags=["admin"])
def create(ctx: CtxDep, principal: PrincipalDep, body: KeyCreate) -> KeyCreated:
    """Create a key (admins). The response is the only time the key is shown."""
    principal.require()
    check_scope(ctx.registry(), body.role, body.communities)
    now = ctx.now()
    with ctx.db.session() as s:
        row, text = create_key(s, body.role, body.communities, body.label, principal.key_id, now)
        audit(
            s,
            principal.key_id,
            principal.role,
            "key.create",
            f"key/{row.id}",
            now,
            key_role=str(body.role),
            communities=row.communities,
            label=body.label,
        )
    return KeyCreated(**key_public(row).model_dump(), key=text)


@router.get("/keys", response_model=list[KeyPublic], tags=["admin"])
def keys(ctx: CtxDep, principal: PrincipalDep) -> list[KeyPublic]:
    principal.require()
    with ctx.db.session() as s:
        return [key_public(r) for r in list_keys(s)]


@router.delete("/keys/{key_id}", status_code=204, tags=["admin"], response_class=Response)
def revoke(ctx: CtxDep, principal: PrincipalDep, key_id: str = Path(min_length=1, max_length=16)) -> Response:
    """Revoke a key and every token issued for it (admins)."""
    principal.require()
    now = ctx.now()
    with ctx.db.session() as s:
        row = revoke_key(s, key_id, now)
        if row is None:
            raise ApiError("key_not_found", key=key_id)
        audit(s, principal.key_id, principal.role, "key.revoke", f"key/{key_id}", now)
    ctx.auth_cache.clear()  # the key and its tokens stop working here at once
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditPublic], tags=["admin"])
def audit_log(
    ctx: CtxDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[AuditPublic]:
    """Writes through the API, newest first (admins); page with `before_id`."""
    principal.require()
    with ctx.db.session() as s:
        q = select(AuditEntry)
        if before_id is not None:
            q = q.where(AuditEntry.id < before_id)
        rows = s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))
        return [
            AuditPublic(
                id=r.id,
                at=r.at,
                actor=r.actor,
                role=r.role,
                action=r.action,
                target=r.target,
                detail=r.detail,
            )
            for r in rows
        ]


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"])
def token(
    ctx: CtxDep,
    grant_type: Annotated[str, Form(max_length=64)],
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    client_id: Annotated[str | None, Form(max_length=200)] = None,
    username: Annotated[str | None, Form(max_length=200)] = None,
) -> TokenResponse:
    """OAuth2 token endpoint: `client_credentials` with the API key as `client_secret`, or `password`
    with the key as `password` (what /docs' Authorize dialog sends). The id fields are not needed."""
    del client_id, username  # the key names itself
    if grant_type not in ("client_credentials", "password"):
        raise ApiError("unsupported_grant", grant=grant_type)
    now = ctx.now()
    with ctx.db.session() as s:
        principal = check_key(s, client_secret or password or "")
        text, expires_in = issue_token(s, principal, now, ctx.token_ttl_s)
        audit(
            s,
            principal.key_id,
            principal.role,
            "token.issue",
            f"key/{principal.key_id}",
            now,
            expires_in=expires_in,
        )
    return TokenResponse(
        access_token=text,
        token_type="bearer",  # noqa: S106 (the OAuth2 token type)
        expires_in=expires_in,
    )


@router.get("/me", response_model=Me, tags=["auth"])
def me(principal: PrincipalDep) -> Me:
    return Me(
        key_id=principal.key_id,
        role=principal.role,
        communities=sorted(principal.communities),
        label=principal.label,
    )


@router.get(
    "/healthz",
    response_model=Health,
    tags=["health"],
    # Degraded is still a Health body, not the ErrorResponse every route declares for 503.
    responses={503: {"model": Health, "description": "InfluxDB or the SQL database does not answer"}},
)
def healthz(ctx: CtxDep, response: Response) -> Health:
    """Liveness and what the API depends on (no key needed): 200 when both answer, else 503."""
    influx = database = "ok"
    try:
        ctx.store.ping()
    except StoreError as exc:
        influx = f"unavailable: {exc}"
    try:
        with ctx.db.session() as s:
            s.execute(select(1))
    except SQLAlchemyError as exc:
        database = f"unavailable: {type(exc).__name__}"
    ok = influx == "ok" and database == "ok"
    response.status_code = 200 if ok else 503
    return Health(status="ok" if ok else "degraded", influx=influx, database=database)
