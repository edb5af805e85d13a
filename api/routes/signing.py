"""Evaluators' signing keys and the signatures of verdicts and reports (evidence.signing).

Admins register and revoke public keys (`/signing-keys`; every role may list them: they are public,
and verifying needs them). Evaluators (and admins) record a detached signature (`jieshui evidence sign`)
of a community-year's verdict JSON or report PDF: it must verify with a registered, unrevoked key
whose signer it names, and sign the bytes this API serves for the latest verification run
(api.reports); `?check=true` answers whether it would be recorded, recording nothing. Every role reads
a community's signatures (managers: their own communities), each with its `.sig` document.
docs/evidence.md, "Signatures".
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from api import reports
from api.auth import Principal, Role, audit
from api.db import Signature, SigningKey, VerificationRun
from api.deps import ApiContext, CtxDep, LangDep, PrincipalDep, ScopedDep
from api.errors import ApiError, ErrorResponse, Lang, message
from api.routes.verification import Year, _check_year, _latest_run
from evidence import signing_keys
from evidence.signing import (
    ARTIFACT_TEXT,
    SignatureDocument,
    SignatureFailure,
    SigningKeyError,
    format_time,
    registered_key,
    sha256_hex,
    short_fingerprint,
    verify_document,
)

router = APIRouter(tags=["signing"])

#: How far a signature's time may be ahead of the server's clock (the signer's clock may run fast).
CLOCK_SLACK = dt.timedelta(minutes=5)
LANGS: tuple[Lang, ...] = ("zh-CN", "en")

Signer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the raw key")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SigningKeyIn(_In):
    signer: Signer
    public_key: str = Field(
        min_length=1, max_length=2000, description="base64 of the raw 32-byte Ed25519 key, or PEM"
    )


class SigningKeyRevoke(_In):
    fingerprint: Fingerprint


class SigningKeyPublic(_Out):
    fingerprint: str
    fingerprint_short: str  # as reports show it: the first 16 hex digits in groups of four
    signer: str
    public_key: str  # base64 of the raw 32 bytes
    registered_at: dt.datetime
    registered_by: str
    revoked_at: dt.datetime | None


class SignaturePublic(_Out):
    id: int
    community: str
    year: int
    artifact: str
    sha256: str
    signer: str
    fingerprint: str
    fingerprint_short: str
    signed_at: dt.datetime
    recorded_at: dt.datetime
    recorded_by: str
    key_revoked_at: dt.datetime | None  # a signature recorded before its key's revocation stays valid
    #: whether it signs an artifact of the latest run: its verdict JSON, or its report as served when
    #: the signature was recorded
    latest_run: bool
    document: SignatureDocument  # the `.sig` file: `jieshui evidence verify FILE --sig` checks it


class SignatureCheck(_Out):
    """What `?check=true` answers: whether the signature would be recorded, and why not."""

    valid: bool
    code: str | None  # the error code recording would answer, None when valid
    message: str
    lang: Lang
    recorded_id: int | None  # the signature as recorded already, if it is


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "registered or recorded already"}
}
_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_CONFLICT,
    200: {"model": SignatureCheck, "description": "`check=true`: the outcome; nothing is recorded"},
}
_SIGNED = {
    "zh-CN": "由 {signer}（{fingerprint}）于 {signed_at} 签署：{community} {year} 年的{artifact}",
    "en": "signed by {signer} ({fingerprint}) on {signed_at}: {artifact} of {community} {year}",
}


def key_public(row: SigningKey) -> SigningKeyPublic:
    return SigningKeyPublic(
        fingerprint=row.fingerprint,
        fingerprint_short=short_fingerprint(row.fingerprint),
        signer=row.signer,
        public_key=row.public_key,
        registered_at=row.registered_at,
        registered_by=row.registered_by,
        revoked_at=row.revoked_at,
    )


def signature_public(row: Signature, key: SigningKey, latest_run: bool) -> SignaturePublic:
    return SignaturePublic(
        id=row.id,
        community=row.community,
        year=row.year,
        artifact=row.artifact,
        sha256=row.sha256,
        signer=key.signer,
        fingerprint=row.fingerprint,
        fingerprint_short=short_fingerprint(row.fingerprint),
        signed_at=row.signed_at,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        key_revoked_at=key.revoked_at,
        latest_run=latest_run,
        document=signing_keys.document_of(row, key),
    )


# --- keys ---------------------------------------------------------------------------------------


@router.post("/signing-keys", response_model=SigningKeyPublic, status_code=201, responses=_CONFLICT)
def register_key(ctx: CtxDep, principal: PrincipalDep, body: SigningKeyIn) -> SigningKeyPublic:
    """Register an evaluator's public key under their name (admins); 409 if it is registered."""
    principal.require()
    now = ctx.now()
    with ctx.db.session() as s:
        try:
            row = signing_keys.register(s, body.signer, body.public_key, principal.key_id, now)
        except signing_keys.KeyExists as exc:
            raise ApiError(
                "signing_key_exists",
                fingerprint=exc.row.fingerprint,
                signer=exc.row.signer,
                registered_at=format_time(exc.row.registered_at),
            ) from exc
        except SigningKeyError as exc:
            raise ApiError("invalid_public_key", reason_zh=exc.zh, reason_en=str(exc)) from exc
        audit(s, principal.key_id, principal.role, "signing_key.register", f"signing-key/{row.fingerprint}",
              now, signer=row.signer)  # fmt: skip
    return key_public(row)


@router.get("/signing-keys", response_model=list[SigningKeyPublic])
def list_keys(ctx: CtxDep, principal: PrincipalDep) -> list[SigningKeyPublic]:
    """Every registered key, revoked ones too (any role: public keys are public, and an evaluator
    verifying offline saves this list and passes it as `jieshui evidence verify --keys`)."""
    del principal  # any role
    with ctx.db.session() as s:
        return [key_public(r) for r in signing_keys.all_keys(s)]


@router.post("/signing-keys/revoke", response_model=SigningKeyPublic)
def revoke_key(ctx: CtxDep, principal: PrincipalDep, body: SigningKeyRevoke) -> SigningKeyPublic:
    """Revoke a key from now on (admins): its signatures recorded until now stay, new ones are refused.
    Revoking a revoked key keeps its first revocation time."""
    principal.require()
    now = ctx.now()
    with ctx.db.session() as s:
        row = s.get(SigningKey, body.fingerprint)
        if row is None:
            raise ApiError("signing_key_not_found", fingerprint=body.fingerprint)
        if signing_keys.revoke(s, row, now):
            audit(s, principal.key_id, principal.role, "signing_key.revoke", f"signing-key/{row.fingerprint}",
                  now, signer=row.signer)  # fmt: skip
    return key_public(row)


# --- signatures ---------------------------------------------------------------------------------

SIGNATURES = "/communities/{community_id}/verifications/{year}/signatures"


def _latest(row: Signature, run: VerificationRun | None, verdict_sha: str | None) -> bool:
    if run is None:
        return False
    if row.artifact == "verdict_json":
        return row.sha256 == verdict_sha
    # a report signature is checked against the latest run's report when it is recorded
    return row.recorded_at >= run.run_at


@router.get(SIGNATURES, response_model=list[SignaturePublic])
def list_signatures(ctx: CtxDep, scoped: ScopedDep, year: Year) -> list[SignaturePublic]:
    """The community-year's recorded signatures, oldest first, with their `.sig` documents."""
    _check_year(ctx, year)
    run = _latest_run(ctx, scoped.community.id, year)
    verdict_sha = sha256_hex(reports.verdict_json(run)) if run is not None else None
    with ctx.db.session() as s:
        return [
            signature_public(sig, key, _latest(sig, run, verdict_sha))
            for sig, key in signing_keys.recorded(s, scoped.community.id, year)
        ]


def _check_signature(
    ctx: ApiContext, s: Session, document: SignatureDocument, community: str, year: int
) -> tuple[SigningKey, Signature | None]:
    """Raise the ApiError recording would answer, unless the signature holds: of this community-year,
    not from the future, by a registered unrevoked key of the signer it names, over the bytes this API
    serves for the latest run. Returns the key, and the same signature if it is recorded already."""
    if (document.community, document.year) != (community, year):
        raise ApiError(
            "signature_scope_mismatch",
            community=community,
            year=year,
            doc_community=document.community,
            doc_year=document.year,
        )
    now = ctx.now()
    if document.signed_time() > now + CLOCK_SLACK:
        raise ApiError("signed_in_future", signed_at=document.signed_at, now=format_time(now))
    key = s.get(SigningKey, document.fingerprint)
    if key is None:
        raise ApiError("signing_key_unregistered", fingerprint=document.fingerprint)
    if key.revoked_at is not None:  # whatever time the document claims: the signer writes it
        raise ApiError(
            "signing_key_revoked", fingerprint=key.fingerprint, revoked_at=format_time(key.revoked_at)
        )
    registered = registered_key(key.fingerprint, key.signer, key.public_key)
    try:
        verify_document(document, {key.fingerprint: registered})
    except SignatureFailure as exc:
        raise ApiError(exc.code, **exc.params) from exc
    run = _latest_run(ctx, community, year)
    if run is None:
        raise ApiError("verification_not_run", community=community, year=year)
    existing = signing_keys.find_recorded(s, document)
    if existing is None:  # (a recorded one was checked when it was recorded: no need to print it again)
        _check_served(ctx, run, document)
    return key, existing


def _check_served(ctx: ApiContext, run: VerificationRun, document: SignatureDocument) -> None:
    """The document's SHA-256 is of the bytes served for the run: its verdict JSON, or its report PDF
    in zh-CN or en (printed again: the same run prints the same bytes)."""
    if document.artifact == "verdict_json":
        served = {"": sha256_hex(reports.verdict_json(run))}
    else:
        served = {}
        for lang in LANGS:
            served[lang] = sha256_hex(reports.report_pdf(ctx, run, lang))
            if served[lang] == document.sha256:
                return
    if document.sha256 in served.values():
        return
    text = ARTIFACT_TEXT[document.artifact]
    raise ApiError(
        "signature_not_served",
        signed=document.sha256,
        served=", ".join(f"{lang}: {sha}" if lang else sha for lang, sha in served.items()),
        community=run.community,
        year=run.year,
        artifact_zh=text["zh-CN"],
        artifact_en=text["en"],
    )


def _valid_message(document: SignatureDocument, lang: Lang) -> str:
    return _SIGNED[lang].format(
        signer=document.signer,
        fingerprint=document.fingerprint,
        signed_at=document.signed_at,
        community=document.community,
        year=document.year,
        artifact=ARTIFACT_TEXT[document.artifact][lang],
    )


@router.post(SIGNATURES, response_model=SignaturePublic, status_code=201, responses=_UPLOAD_RESPONSES)
def record_signature(
    ctx: CtxDep,
    principal: PrincipalDep,
    scoped: ScopedDep,
    year: Year,
    lang: LangDep,
    body: SignatureDocument,
    check: Annotated[bool, Query(description="only check: answer 200 with the outcome")] = False,
) -> Any:
    """Record a signature (the `.sig` document of `jieshui evidence sign`) of the community-year's
    verdict JSON or report PDF (evaluators, admins); 422 naming what does not hold, 409 if it is
    recorded already. With `check=true`, 200 and whether it would be recorded; nothing is stored."""
    principal.require(Role.EVALUATOR)
    _check_year(ctx, year)
    community = scoped.community.id
    if check:
        return _check_only(ctx, body, community, year, lang)
    with ctx.db.session() as s:
        key, existing = _check_signature(ctx, s, body, community, year)
        if existing is not None:
            raise ApiError("signature_exists", id=existing.id, recorded_at=format_time(existing.recorded_at))
        return _record(ctx, s, principal, body, key)


def _check_only(
    ctx: ApiContext, document: SignatureDocument, community: str, year: int, lang: Lang
) -> JSONResponse:
    try:
        with ctx.db.session() as s:
            _, existing = _check_signature(ctx, s, document, community, year)
    except ApiError as exc:
        text = message(exc.code, lang, **exc.params)
        outcome = SignatureCheck(valid=False, code=exc.code, message=text, lang=lang, recorded_id=None)
    else:
        outcome = SignatureCheck(
            valid=True,
            code=None,
            message=_valid_message(document, lang),
            lang=lang,
            recorded_id=existing.id if existing is not None else None,
        )
    return JSONResponse(outcome.model_dump(mode="json"), headers={"Content-Language": lang})


def _record(
    ctx: ApiContext, s: Session, principal: Principal, document: SignatureDocument, key: SigningKey
) -> SignaturePublic:
    now = ctx.now()
    row = signing_keys.record(s, document, principal.key_id, now)
    audit(
        s,
        principal.key_id,
        principal.role,
        "signature.record",
        f"community/{row.community}/{row.year}",
        now,
        signature_id=row.id,
        artifact=row.artifact,
        fingerprint=row.fingerprint,
        sha256=row.sha256,
    )
    return signature_public(row, key, latest_run=True)
