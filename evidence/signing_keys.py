"""The registered signing keys and the recorded signatures in SQL (api.db.SigningKey, api.db.Signature),
and the exported keys file an evaluator verifies with offline; shared by `jieshui evidence keys|verify`
and the API (api/routes/signing.py). The cryptography is in evidence.signing.

A recorded signature keeps every field of its document but the signer's name, which is the name its
key is registered to (a document naming anybody else is refused), so `document_of` gives back the
exact `.sig` document that was uploaded.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import Signature, SigningKey
from evidence.signing import (
    RegisteredKey,
    SignatureDocument,
    SigningKeyError,
    b64,
    fingerprint,
    format_time,
    parse_public_key,
    registered_key,
)

KEYS_FORMAT = "jieshui-signing-keys/1"


class KeyExists(SigningKeyError):
    """The public key is registered already."""

    def __init__(self, row: SigningKey) -> None:
        when = format_time(row.registered_at)
        super().__init__(f"key {row.fingerprint} is registered already (to {row.signer}, on {when})")
        self.row = row


def register(session: Session, signer: str, public_key: str, by: str, now: dt.datetime) -> SigningKey:
    """Register a public key (base64 of the raw 32 bytes, or PEM) for `signer`; KeyExists if it is."""
    raw = parse_public_key(public_key)
    fp = fingerprint(raw)
    existing = session.get(SigningKey, fp)
    if existing is not None:
        raise KeyExists(existing)
    row = SigningKey(fingerprint=fp, signer=signer, public_key=b64(raw), registered_at=now, registered_by=by)
    session.add(row)
    session.flush()
    return row


def all_keys(session: Session) -> list[SigningKey]:
    order = (SigningKey.registered_at, SigningKey.fingerprint)
    return list(session.scalars(select(SigningKey).order_by(*order)))


def find(session: Session, text: str) -> SigningKey | None:
    """The key of a fingerprint, given in full or by a unique prefix of 16 hex digits or more (spaces
    ignored: the grouped short form of the reports works)."""
    wanted = text.replace(" ", "").lower()
    if len(wanted) == 64:
        return session.get(SigningKey, wanted)
    if len(wanted) < 16:
        return None
    found = [k for k in all_keys(session) if k.fingerprint.startswith(wanted)]
    return found[0] if len(found) == 1 else None


def revoke(session: Session, row: SigningKey, now: dt.datetime) -> bool:
    """Revoke a key from now on; False when it was revoked already (the first time stands)."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


def registered(rows: list[SigningKey]) -> dict[str, RegisteredKey]:
    """The keys by fingerprint, each checked to hash to its fingerprint (SigningKeyError if one does not)."""
    return {
        r.fingerprint: registered_key(r.fingerprint, r.signer, r.public_key, r.registered_at, r.revoked_at)
        for r in rows
    }


# --- the keys file ------------------------------------------------------------------------------


def key_fields(row: SigningKey) -> dict[str, Any]:
    return {
        "fingerprint": row.fingerprint,
        "signer": row.signer,
        "public_key": row.public_key,
        "registered_at": format_time(row.registered_at),
        "registered_by": row.registered_by,
        "revoked_at": format_time(row.revoked_at) if row.revoked_at else None,
    }


def export_keys(rows: list[SigningKey], now: dt.datetime) -> str:
    """The keys file: every registered key, revoked ones with their revocation time."""
    document = {"format": KEYS_FORMAT, "exported_at": format_time(now), "keys": [key_fields(r) for r in rows]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SigningKeyError(f"{where}: not a time: {value!r}")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SigningKeyError(f"{where}: not a time: {value!r}") from exc
    if when.tzinfo is None:
        raise SigningKeyError(f"{where}: a time without a zone: {value!r}")
    return when


def load_keys_file(text: str) -> dict[str, RegisteredKey]:
    """The keys of a keys file (`jieshui evidence keys export`), or of the list `GET /signing-keys`
    answers; SigningKeyError naming the first problem. Every key must hash to its fingerprint."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SigningKeyError(f"not JSON: {exc}") from exc
    if isinstance(raw, dict):
        if raw.get("format") != KEYS_FORMAT:
            raise SigningKeyError(f"format {raw.get('format')!r}, expected {KEYS_FORMAT!r}")
        raw = raw.get("keys")
    if not isinstance(raw, list):
        raise SigningKeyError("no list of keys")
    keys: dict[str, RegisteredKey] = {}
    for i, entry in enumerate(raw):
        where = f"keys[{i}]"
        if not isinstance(entry, dict):
            raise SigningKeyError(f"{where}: not an object")
        missing = [f for f in ("fingerprint", "signer", "public_key") if not isinstance(entry.get(f), str)]
        if missing:
            raise SigningKeyError(f"{where}: missing {', '.join(missing)}")
        key = registered_key(
            entry["fingerprint"],
            entry["signer"],
            entry["public_key"],
            _time(entry.get("registered_at"), f"{where}.registered_at"),
            _time(entry.get("revoked_at"), f"{where}.revoked_at"),
        )
        keys[key.fingerprint] = key
    return keys


# --- recorded signatures ------------------------------------------------------------------------


def record(session: Session, document: SignatureDocument, by: str, now: dt.datetime) -> Signature:
    """Store a signature that was checked (the caller's job)."""
    row = Signature(
        community=document.community,
        year=document.year,
        artifact=document.artifact,
        sha256=document.sha256,
        fingerprint=document.fingerprint,
        signature=document.signature,
        signed_at=document.signed_time(),
        recorded_at=now,
        recorded_by=by,
    )
    session.add(row)
    session.flush()
    return row


def recorded(session: Session, community: str, year: int) -> list[tuple[Signature, SigningKey]]:
    """The community-year's signatures with their keys, oldest first."""
    rows = session.execute(
        select(Signature, SigningKey)
        .join(SigningKey, Signature.fingerprint == SigningKey.fingerprint)
        .where(Signature.community == community, Signature.year == year)
        .order_by(Signature.id)
    )
    return [(s, k) for s, k in rows]


def find_recorded(session: Session, document: SignatureDocument) -> Signature | None:
    """The recorded signature with the same signature bytes for the same community-year, if any."""
    return session.scalars(
        select(Signature).where(
            Signature.community == document.community,
            Signature.year == document.year,
            Signature.signature == document.signature,
        )
    ).first()


def document_of(row: Signature, key: SigningKey) -> SignatureDocument:
    """The `.sig` document of a recorded signature, as it was uploaded."""
    return SignatureDocument(
        artifact=row.artifact,  # stored from a checked document
        community=row.community,
        year=row.year,
        sha256=row.sha256,
        signer=key.signer,
        fingerprint=row.fingerprint,
        signed_at=format_time(row.signed_at),
        signature=row.signature,
    )
