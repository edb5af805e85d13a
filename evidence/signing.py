"""Ed25519 signatures of verdicts and evaluation reports, checked against the registered public keys.

An evaluator holds a private key (PKCS#8 PEM, optionally encrypted with a passphrase); an admin
registers its public key with the signer's name (`api.db.SigningKey`). A signature is a detached JSON
document (`FILE.sig`, format `jieshui-signature/1`) naming what was signed (the artifact kind, the
community and year, the SHA-256 of the exact bytes), who signed (signer, key fingerprint) and when;
the Ed25519 signature covers a canonical encoding of *all* those fields, so neither the file nor any
of the document's fields can change without the check failing. `verify` says who signed what and when,
or exactly what is wrong. docs/evidence.md, "Signatures".

Pure: no I/O here (the command line and the API read files and the database and pass bytes in).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jieshui.errors import JieshuiError

FORMAT = "jieshui-signature/1"
Artifact = Literal["verdict_json", "report_pdf"]
ARTIFACTS: tuple[Artifact, ...] = ("verdict_json", "report_pdf")
#: What each artifact is, for people (the command line, the API's messages).
ARTIFACT_TEXT: dict[str, dict[str, str]] = {
    "verdict_json": {"zh-CN": "核验结果（JSON）", "en": "verdict (JSON)"},
    "report_pdf": {"zh-CN": "评估报告（PDF）", "en": "evaluation report (PDF)"},
}
#: Hex digits of a fingerprint shown in reports (the full 64 in tooltips and JSON).
SHORT_FINGERPRINT = 16
#: Prefixed to the canonical fields before signing: a signature made for anything else never verifies.
_DOMAIN = b"jieshui-signature/1\n"
_SIGNED_AT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")  # ASCII digits only
_HEX64 = r"^[0-9a-f]{64}$"
_SIGNATURE_B64 = r"^[A-Za-z0-9+/]{86}==$"  # 64 bytes


class SignatureFailure(JieshuiError):
    """A signature does not hold; `code` names the reason (the API's error code), `params` its figures."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class SigningKeyError(JieshuiError):
    """A key (file, PEM, base64 text) cannot be used: the message says why (`zh`: in Chinese, for the
    API's answers, when the key came from a request)."""

    def __init__(self, message: str, zh: str | None = None) -> None:
        super().__init__(message)
        self.zh = zh or message


class SignatureDocument(BaseModel):
    """The detached signature (`FILE.sig`): every field but `signature` is signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["jieshui-signature/1"] = "jieshui-signature/1"
    artifact: Artifact
    community: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2100)
    sha256: str = Field(pattern=_HEX64, description="SHA-256 (hex) of the exact bytes signed")
    signer: str = Field(min_length=1, max_length=200)
    fingerprint: str = Field(pattern=_HEX64, description="SHA-256 (hex) of the raw 32-byte public key")
    signed_at: str = Field(pattern=_SIGNED_AT.pattern, description="UTC, to the second: YYYY-MM-DDTHH:MM:SSZ")
    signature: str = Field(pattern=_SIGNATURE_B64, description="Ed25519 signature, base64")

    @field_validator("signed_at")
    @classmethod
    def _real_time(cls, value: str) -> str:
        parse_time(value)
        return value

    def signed_time(self) -> dt.datetime:
        return parse_time(self.signed_at)


@dataclass(frozen=True)
class RegisteredKey:
    """A public key as registered (api.db.SigningKey), with the raw 32 bytes decoded."""

    fingerprint: str
    signer: str
    public_key: bytes
    registered_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class Verified:
    """A signature that holds: who signed what and when."""

    document: SignatureDocument
    key: RegisteredKey

    def describe(self) -> str:
        d = self.document
        text = (
            f"signed by {d.signer} ({d.fingerprint}) on {d.signed_at}: {d.artifact} of {d.community} {d.year}"
        )
        if self.key.revoked_at is not None:
            text += f" (the key was revoked later, on {format_time(self.key.revoked_at)})"
        return text


# --- times, fingerprints, keys ------------------------------------------------------------------


def format_time(when: dt.datetime) -> str:
    """UTC to the second, as signatures carry it: 2026-01-05T02:00:00Z."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """The aware UTC time of a `signed_at` text; ValueError unless it is YYYY-MM-DDTHH:MM:SSZ."""
    if not _SIGNED_AT.match(text):
        raise ValueError(f"{text!r} is not a UTC time YYYY-MM-DDTHH:MM:SSZ")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(public_key: bytes) -> str:
    """SHA-256 (hex) of the raw 32-byte Ed25519 public key."""
    return sha256_hex(public_key)


def short_fingerprint(full: str) -> str:
    """The first 16 hex digits in groups of four, as reports show it: `a1b2 c3d4 e5f6 a7b8`."""
    head = full[:SHORT_FINGERPRINT]
    return " ".join(head[i : i + 4] for i in range(0, len(head), 4))


def generate_key(passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """A new key pair: (the private key as PKCS#8 PEM, encrypted when a passphrase is given; the raw
    32-byte public key)."""
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return pem, raw_public_key(key)


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def is_encrypted(pem: bytes) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in pem


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key of a PEM file; SigningKeyError naming what is wrong."""
    if is_encrypted(pem) and not passphrase:
        raise SigningKeyError("the private key is encrypted: a passphrase is needed")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase if is_encrypted(pem) else None)
    except ValueError as exc:
        if is_encrypted(pem):
            raise SigningKeyError("the passphrase does not open the private key") from exc
        raise SigningKeyError(f"not a PEM private key: {exc}") from exc
    except TypeError as exc:  # cryptography's word for a password given to a plain key, or none given
        raise SigningKeyError(str(exc)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"not an Ed25519 key but {type(key).__name__.removeprefix('_')}")
    return key


def parse_public_key(text: str) -> bytes:
    """The raw 32 bytes of a public key given as base64 of those bytes, or as a PEM public key."""
    text = text.strip()
    if "PRIVATE KEY" in text:
        raise SigningKeyError(
            "this is a private key: give the public key (keygen printed it); keep the private key secret",
            "这是私钥：请提供公钥（keygen 已输出）；私钥须保密",
        )
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"not a PEM public key: {exc}", "不是 PEM 格式的公钥") from exc
        if not isinstance(key, Ed25519PublicKey):
            kind = type(key).__name__.removeprefix("_")
            raise SigningKeyError(f"not an Ed25519 key but {kind}", f"不是 Ed25519 密钥，而是 {kind}")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError(
            "neither base64 of the 32-byte key nor a PEM public key",
            "既不是 32 字节公钥的 base64，也不是 PEM 格式的公钥",
        ) from exc
    if len(raw) != 32:
        raise SigningKeyError(
            f"an Ed25519 public key is 32 bytes, this is {len(raw)}",
            f"Ed25519 公钥为 32 字节，此处为 {len(raw)} 字节",
        )
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SigningKeyError("not an Ed25519 public key", "不是 Ed25519 公钥") from exc
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def registered_key(
    fp: str,
    signer: str,
    public_key_b64: str,
    registered_at: dt.datetime | None = None,
    revoked_at: dt.datetime | None = None,
) -> RegisteredKey:
    """A registered key from its stored text; SigningKeyError when the key does not hash to its fingerprint
    (a damaged or edited registry must not vouch for a signature)."""
    raw = parse_public_key(public_key_b64)
    if fingerprint(raw) != fp:
        raise SigningKeyError(f"registered key {fp}: its public key does not hash to its fingerprint")
    return RegisteredKey(fp, signer, raw, registered_at, revoked_at)


# --- signing and verifying ----------------------------------------------------------------------


def canonical_message(document: SignatureDocument) -> bytes:
    """What the Ed25519 signature covers: a domain prefix and every field but the signature, as JSON
    with sorted keys and no spaces (UTF-8)."""
    fields = document.model_dump(exclude={"signature"})
    return _DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(
    data: bytes,
    key: Ed25519PrivateKey,
    *,
    artifact: Artifact,
    community: str,
    year: int,
    signer: str,
    signed_at: dt.datetime,
) -> SignatureDocument:
    """The detached signature of `data` (the exact bytes of the file) by `key`."""
    unsigned = {
        "artifact": artifact,
        "community": community,
        "year": year,
        "sha256": sha256_hex(data),
        "signer": signer,
        "fingerprint": fingerprint(raw_public_key(key)),
        "signed_at": format_time(signed_at),
    }
    draft = SignatureDocument.model_validate({**unsigned, "signature": "A" * 86 + "=="})
    signature = key.sign(canonical_message(draft))
    return draft.model_copy(update={"signature": b64(signature)})


def document_text(document: SignatureDocument) -> str:
    """The `.sig` file: the document as indented JSON, fields in a fixed order."""
    return json.dumps(document.model_dump(), indent=2, ensure_ascii=False) + "\n"


def parse_document(text: str | bytes) -> SignatureDocument:
    """A `.sig` document; SignatureFailure `signature_document_invalid` naming the first problem."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureFailure(
            "signature_document_invalid", f"not a signature document: not JSON ({exc})", reason=str(exc)
        ) from exc
    if isinstance(raw, dict) and raw.get("format") != FORMAT:
        found = raw.get("format")
        raise SignatureFailure(
            "signature_document_invalid",
            f"not a signature document: format {found!r}, expected {FORMAT!r}",
            reason=f"format {found!r}",
        )
    try:
        return SignatureDocument.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        )
        raise SignatureFailure(
            "signature_document_invalid", f"not a signature document: {problems}", reason=problems
        ) from exc


def verify_document(document: SignatureDocument, keys: Mapping[str, RegisteredKey]) -> Verified:
    """Check the document alone: its key is registered, the signature holds over every field, the key
    was not revoked at the signature's time, the signer is the key's. SignatureFailure otherwise."""
    fp = document.fingerprint
    key = keys.get(fp)
    if key is None:
        raise SignatureFailure(
            "signing_key_unregistered",
            f"signing key {fp} is not among the {len(keys)} registered signing key(s): "
            "the signature cannot be trusted",
            fingerprint=fp,
            count=len(keys),
        )
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(
            base64.b64decode(document.signature), canonical_message(document)
        )
    except (InvalidSignature, ValueError) as exc:
        raise SignatureFailure(
            "signature_invalid",
            f"the signature does not verify with key {fp} ({key.signer}): the signature document was "
            "altered after signing (its signer, community, year, artifact, time or hash) or was not "
            "made with this key",
            fingerprint=fp,
            signer=key.signer,
        ) from exc
    signed_at = document.signed_time()
    if key.revoked_at is not None and key.revoked_at <= signed_at:
        raise SignatureFailure(
            "signing_key_revoked",
            f"signing key {fp} ({key.signer}) was revoked on {format_time(key.revoked_at)}, "
            f"not after the signature's time {document.signed_at}",
            fingerprint=fp,
            revoked_at=format_time(key.revoked_at),
            signed_at=document.signed_at,
        )
    if document.signer != key.signer:
        raise SignatureFailure(
            "signer_mismatch",
            f"the signature names the signer {document.signer!r}, but key {fp} is registered to "
            f"{key.signer!r}",
            claimed=document.signer,
            registered=key.signer,
            fingerprint=fp,
        )
    return Verified(document, key)


def verify(data: bytes, document: SignatureDocument, keys: Mapping[str, RegisteredKey]) -> Verified:
    """Check a file against its detached signature and the registered keys: `verify_document`, then
    the file's SHA-256, then (for a verdict) that the JSON is of the community and year signed for."""
    verified = verify_document(document, keys)
    actual = sha256_hex(data)
    if actual != document.sha256:
        raise SignatureFailure(
            "signature_file_changed",
            f"the file changed after it was signed: its sha256 is {actual}, the signature is for "
            f"{document.sha256}",
            expected=document.sha256,
            actual=actual,
        )
    if document.artifact == "verdict_json":
        scope = verdict_scope(data)
        if scope is not None and scope != (document.community, document.year):
            raise SignatureFailure(
                "signature_scope_mismatch",
                f"the signature is for {document.community} {document.year}, but the verdict is of "
                f"{scope[0]} {scope[1]}",
                community=scope[0],
                year=scope[1],
                doc_community=document.community,
                doc_year=document.year,
            )
    return verified


def verdict_scope(data: bytes) -> tuple[str, int] | None:
    """(community, year) a verdict JSON names at its top level (the API's run or the engine's result),
    or None when it names none."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    community, year = raw.get("community"), raw.get("year")
    if isinstance(community, str) and isinstance(year, int) and not isinstance(year, bool):
        return community, year
    return None


def by_fingerprint(keys: Iterable[RegisteredKey]) -> dict[str, RegisteredKey]:
    return {k.fingerprint: k for k in keys}
