"""The FastAPI application: `create_app(context)`; `jieshui api` serves it with uvicorn.

Only /docs, /openapi.json, /healthz and the community display pages (/display/<token>, whose link is
the secret: api/routes/display.py) answer without a key (and /auth/token, which takes the key in its
form); every other route depends on the caller (`api.deps.PrincipalDep`). An address with too many
failed authentications is refused on every route but /healthz (`api.ratelimit`).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from api import errors
from api.deps import ApiContext, count_failed_authentications, refuse_blocked
from api.errors import ErrorResponse
from api.routes import (
    admin,
    display,
    evidence,
    meters,
    programme,
    registry,
    series,
    signing,
    status,
    verification,
)

DESCRIPTION = """\
节水型小区 telemetry and verification: registry, live status and alerts for property managers,
verification, reports and decisions for evaluators.

Authenticate with `X-API-Key: jsk_...`, or `Authorization: Bearer <key or token>` (tokens from
`POST /auth/token`). Errors carry a machine-readable `code` and a message in the language of
`Accept-Language` (zh-CN by default, or en). Too many failed authentications from one address (or for
one key id) within a minute are answered 429 `rate_limited`, with `Retry-After`.
"""

#: Every route may answer with these; they share one body (api.errors.ErrorResponse).
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in [
        # A body that cannot even be decoded (FastAPI answers 400, not 422), or an unsupported OAuth2
        # grant type (RFC 6749 §5.2 says 400).
        (400, "malformed request"),
        (401, "no or bad credentials"),
        (403, "the role may not do this"),
        (404, "not found, or not visible to the caller"),
        (413, "the upload is larger than the limit (form imports: 5 MB)"),
        (415, "the body is not of the media type the operation takes (application/json)"),
        (422, "invalid request"),
        (503, "the time-series store is unavailable"),
    ]
}
# Too many failed authentications from the caller's address (or for the key id it sent): every route
# but /healthz may answer it (docs/api.md, "Failed authentications").
ERROR_RESPONSES[429] = {
    "model": ErrorResponse,
    "description": "too many failed authentications; retry after `Retry-After` seconds",
    "headers": {
        "Retry-After": {
            "description": "seconds until the address (or key id) may try again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Jieshui 节水 API",
        version="1",
        description=DESCRIPTION,
        responses=ERROR_RESPONSES,
        redoc_url=None,  # only /docs (and its OAuth2 redirect), /openapi.json, /healthz answer keyless
        dependencies=[Depends(refuse_blocked)],  # an address with too many failed authentications: 429
    )
    app.state.ctx = ctx
    errors.install(app)
    count_failed_authentications(app)
    for module in (
        admin,
        registry,
        status,
        series,
        verification,
        programme,
        meters,
        signing,
        evidence,
        display,
    ):
        app.include_router(module.router)
    return app
