"""API keys and OAuth2 bearer tokens, and the roles they carry.

A key reads `jsk_<id>_<secret>`: the id is public (it names the key in the audit log), the secret is
32 random bytes of which only the SHA-256 is stored. A random secret of that length needs no slow
password hash: nobody can guess it, and the hash only keeps a copy of the database from being a copy of
the keys. A token (`jst_<secret>`) is issued for a key by `POST /auth/token` (client credentials) and
expires; revoking the key kills its tokens.

Roles: `admin` does everything; `evaluator` reads every community and records decisions; `manager`
sees only the communities listed on the key, and another community is *not found* for them, exactly
as a community that does not exist (404, never 403), so ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.db import AccessToken, ApiKey, AuditEntry
from api.errors import ApiError

KEY_PREFIX = "jsk_"
TOKEN_PREFIX = "jst_"  # noqa: S105 (a prefix, not a secret)
#: A key's public id, as `create_key` makes it.
KEY_ID = re.compile(r"[0-9a-f]{12}")


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    EVALUATOR = "evaluator"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key (directly or through a token), its role and, for managers, scope."""

    key_id: str
    role: Role
    communities: frozenset[str]
    label: str

    def sees(self, community_id: str) -> bool:
        return self.role is not Role.MANAGER or community_id in self.communities

    def require(self, *roles: Role) -> None:
        """Raise 403 unless the caller has one of `roles` (admin always passes)."""
        if self.role is Role.ADMIN or self.role in roles:
            return
        allowed = ", ".join(sorted({Role.ADMIN, *roles}))
        raise ApiError("forbidden_role", role=str(self.role), allowed=allowed)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_key(
    session: Session, role: Role, communities: list[str], label: str, created_by: str, now: dt.datetime
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its full text, which is never stored or shown again."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=key_id,
        secret_sha256=_sha256(secret),
        role=str(role),
        communities=sorted(set(communities)),
        label=label,
        created_at=now,
        created_by=created_by,
    )
    session.add(row)
    return row, f"{KEY_PREFIX}{key_id}_{secret}"


def _principal(row: ApiKey) -> Principal:
    return Principal(row.id, Role(row.role), frozenset(row.communities), row.label)


class BadCredential(ApiError):
    """401: the caller presented a credential that is not one of ours (malformed, an unknown key or
    token, a wrong secret). What the limit on failed authentications counts (`api.ratelimit`), with
    `key_id`, the public part of a presented key (None unless it has the form of our ids). No
    credential at all, an expired token or a revoked key are plain 401s: nobody is guessing."""

    def __init__(self, key_id: str | None = None) -> None:
        super().__init__("unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        self.key_id = key_id


def check_key(session: Session, text: str) -> Principal:
    """The principal of a full key text; 401 if it is not one of ours or was revoked."""
    if not text:
        raise ApiError("unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    body = text.removeprefix(KEY_PREFIX)
    key_id, sep, secret = body.partition("_")
    if not text.startswith(KEY_PREFIX) or not sep or len(key_id) > 16:
        raise BadCredential()
    row = session.get(ApiKey, key_id)
    # compare_digest even when the id is unknown, so timing does not tell which ids exist
    stored = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(stored, _sha256(secret)) or row is None:
        raise BadCredential(key_id if KEY_ID.fullmatch(key_id) else None)
    if row.revoked_at is not None:
        raise ApiError("key_revoked", headers={"WWW-Authenticate": "Bearer"})
    return _principal(row)


def issue_token(session: Session, principal: Principal, now: dt.datetime, ttl_s: float) -> tuple[str, int]:
    """A bearer token for the key, valid `ttl_s`; expired tokens of the key are swept on the way."""
    session.execute(
        delete(AccessToken).where(AccessToken.key_id == principal.key_id, AccessToken.expires_at < now)
    )
    secret = secrets.token_urlsafe(32)
    session.add(
        AccessToken(
            token_sha256=_sha256(secret),
            key_id=principal.key_id,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_s),
        )
    )
    return f"{TOKEN_PREFIX}{secret}", int(ttl_s)


def _check_token(session: Session, text: str, now: dt.datetime) -> tuple[Principal, dt.datetime]:
    # Looked up by the SHA-256 of the secret: what an index lookup's timing could tell is about the
    # hash, never about the secret.
    row = session.get(AccessToken, _sha256(text.removeprefix(TOKEN_PREFIX)))
    if row is None:
        raise BadCredential()
    if row.expires_at <= now:
        raise ApiError("token_expired", headers={"WWW-Authenticate": "Bearer"})
    key = session.get(ApiKey, row.key_id)
    if key is None or key.revoked_at is not None:
        raise ApiError("key_revoked", headers={"WWW-Authenticate": "Bearer"})
    return _principal(key), row.expires_at


def authenticate_with_expiry(
    session: Session, credential: str | None, now: dt.datetime
) -> tuple[Principal, dt.datetime | None]:
    """The principal for a key or a token, whichever the caller sent, and when the credential stops
    being valid by itself (a token's expiry; None for a key, valid until revoked)."""
    if not credential:
        raise ApiError("unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    if credential.startswith(TOKEN_PREFIX):
        return _check_token(session, credential, now)
    return check_key(session, credential), None


def revoke_key(session: Session, key_id: str, now: dt.datetime) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now
    session.execute(delete(AccessToken).where(AccessToken.key_id == key_id))
    return row


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def audit(
    session: Session,
    actor: str,
    role: str,
    action: str,
    target: str,
    now: dt.datetime,
    **detail: object,
) -> None:
    """Record a write (same transaction as the write itself: both land, or neither)."""
    session.add(AuditEntry(at=now, actor=actor, role=role, action=action, target=target, detail=dict(detail)))
