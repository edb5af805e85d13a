"""Signatures of verdicts and reports (evidence.signing) and `jieshui evidence keygen|sign|verify|keys`:
a signature holds for the exact bytes and every field of its document, and each way it can fail is
named (the file changed, the document edited, an unregistered key, a revoked key, another signer); a
real PDF report printed by Chromium is signed and verified, then fails with one byte changed; the
command line end to end as subprocesses on a real SQL database, and offline with an exported keys file."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.db import Database
from evidence.signing import (
    RegisteredKey,
    SignatureDocument,
    SignatureFailure,
    SigningKeyError,
    b64,
    fingerprint,
    generate_key,
    load_private_key,
    parse_document,
    parse_public_key,
    raw_public_key,
    short_fingerprint,
    sign,
    verify,
)
from evidence.signing_keys import all_keys, export_keys, load_keys_file, register
from jieshui.inventory import load_site
from store.influx import InfluxStore
from verification.engine import verify as verify_claims
from verification.report import ShownSignature, render_html, render_pdf

ROOT = Path(__file__).parents[2]
SIGNED_AT = dt.datetime(2026, 3, 2, 1, 30, 5, tzinfo=dt.UTC)
SIGNER = "区水务局 评审组 张三"
COMMUNITY, YEAR = "xinjing-6", 2025
VERDICT = json.dumps({"id": 7, "community": COMMUNITY, "year": YEAR, "overall": "verified"}).encode()


def _key() -> tuple[Ed25519PrivateKey, RegisteredKey]:
    private = Ed25519PrivateKey.generate()
    public = raw_public_key(private)
    return private, RegisteredKey(fingerprint(public), SIGNER, public)


def _sign(data: bytes, private: Ed25519PrivateKey, **kw: Any) -> SignatureDocument:
    fields: dict[str, Any] = {"artifact": "verdict_json", "community": COMMUNITY, "year": YEAR, "signer": SIGNER,
                              "signed_at": SIGNED_AT, **kw}  # fmt: skip
    return sign(data, private, **fields)


def _failure(data: bytes, document: SignatureDocument, keys: dict[str, RegisteredKey]) -> SignatureFailure:
    with pytest.raises(SignatureFailure) as caught:
        verify(data, document, keys)
    return caught.value


def test_a_signature_says_who_signed_what_and_when() -> None:
    private, key = _key()
    document = _sign(VERDICT, private)
    assert document.fingerprint == key.fingerprint
    assert document.signed_at == "2026-03-02T01:30:05Z"
    verified = verify(VERDICT, document, {key.fingerprint: key})
    assert verified.describe() == (
        f"signed by {SIGNER} ({key.fingerprint}) on 2026-03-02T01:30:05Z: verdict_json of {COMMUNITY} {YEAR}"
    )
    # the .sig file round-trips
    assert parse_document(json.dumps(document.model_dump())) == document


def test_one_changed_byte_fails_naming_both_hashes() -> None:
    private, key = _key()
    document = _sign(VERDICT, private)
    changed = VERDICT.replace(b"verified", b"verifieD")
    failure = _failure(changed, document, {key.fingerprint: key})
    assert failure.code == "signature_file_changed"
    assert failure.params["expected"] == document.sha256
    assert str(failure) == (
        f"the file changed after it was signed: its sha256 is {failure.params['actual']}, "
        f"the signature is for {document.sha256}"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signer", "Somebody Else"),
        ("community", "xianxia-xicun"),
        ("year", 2024),
        ("artifact", "report_pdf"),
        ("signed_at", "2026-03-01T01:30:05Z"),
        ("sha256", "0" * 64),
    ],
)
def test_an_edited_signature_document_fails(field: str, value: object) -> None:
    """Every field is signed, not only the file's hash: editing any of them breaks the signature."""
    private, key = _key()
    document = _sign(VERDICT, private)
    edited = SignatureDocument.model_validate({**document.model_dump(), field: value})
    failure = _failure(VERDICT, edited, {key.fingerprint: key})
    assert failure.code == "signature_invalid"
    assert str(failure).startswith(f"the signature does not verify with key {key.fingerprint} ({SIGNER}): ")


def test_an_unregistered_key_fails_naming_its_fingerprint() -> None:
    private, _ = _key()
    _, registered = _key()
    document = _sign(VERDICT, private)
    failure = _failure(VERDICT, document, {registered.fingerprint: registered})
    assert failure.code == "signing_key_unregistered"
    assert str(failure) == (
        f"signing key {document.fingerprint} is not among the 1 registered signing key(s): "
        "the signature cannot be trusted"
    )


def test_a_revoked_key_fails_for_signatures_made_after_its_revocation() -> None:
    private, key = _key()
    revoked = RegisteredKey(key.fingerprint, key.signer, key.public_key, revoked_at=SIGNED_AT)
    # made at the revocation or after: refused
    failure = _failure(VERDICT, _sign(VERDICT, private), {key.fingerprint: revoked})
    assert failure.code == "signing_key_revoked"
    assert str(failure) == (
        f"signing key {key.fingerprint} ({SIGNER}) was revoked on 2026-03-02T01:30:05Z, not after the "
        "signature's time 2026-03-02T01:30:05Z"
    )
    # made before: it stands, and says the key was revoked since
    earlier = _sign(VERDICT, private, signed_at=SIGNED_AT - dt.timedelta(seconds=1))
    assert (
        verify(VERDICT, earlier, {key.fingerprint: revoked})
        .describe()
        .endswith("(the key was revoked later, on 2026-03-02T01:30:05Z)")
    )


def test_a_signer_other_than_the_keys_fails() -> None:
    private, key = _key()
    failure = _failure(VERDICT, _sign(VERDICT, private, signer="张三"), {key.fingerprint: key})
    assert failure.code == "signer_mismatch"
    assert str(failure) == (
        f"the signature names the signer '张三', but key {key.fingerprint} is registered to '{SIGNER}'"
    )


def test_a_verdict_signed_for_another_community_fails() -> None:
    private, key = _key()
    document = _sign(VERDICT, private, community="xianxia-xicun")
    failure = _failure(VERDICT, document, {key.fingerprint: key})
    assert failure.code == "signature_scope_mismatch"
    assert (
        str(failure) == f"the signature is for xianxia-xicun {YEAR}, but the verdict is of {COMMUNITY} {YEAR}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a signature document: not JSON"),
        ('{"format": "pgp"}', "not a signature document: format 'pgp', expected 'jieshui-signature/1'"),
        ('{"format": "jieshui-signature/1"}', "not a signature document: artifact: Field required"),
    ],
)
def test_a_malformed_signature_document_is_named(text: str, message: str) -> None:
    with pytest.raises(SignatureFailure) as caught:
        parse_document(text)
    assert caught.value.code == "signature_document_invalid"
    assert str(caught.value).startswith(message)


def test_keys_load_from_pem_or_base64_and_private_keys_are_refused() -> None:
    pem, public = generate_key(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    private = load_private_key(pem, b"correct horse")
    assert raw_public_key(private) == public
    with pytest.raises(SigningKeyError, match="a passphrase is needed"):
        load_private_key(pem)
    with pytest.raises(SigningKeyError, match="the passphrase does not open the private key"):
        load_private_key(pem, b"wrong")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_public_key(public_pem.decode()) == parse_public_key(b64(public)) == public
    with pytest.raises(SigningKeyError, match="this is a private key"):
        parse_public_key(pem.decode())
    with pytest.raises(SigningKeyError, match="32 bytes, this is 33"):
        parse_public_key(b64(public + b"\0"))
    assert short_fingerprint("0123456789abcdef" + "0" * 48) == "0123 4567 89ab cdef"


def test_a_keys_file_whose_key_does_not_match_its_fingerprint_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/keys.sqlite3")
    _, public = generate_key()
    with db.session() as s:
        register(s, SIGNER, b64(public), "test", SIGNED_AT)
        text = export_keys(all_keys(s), SIGNED_AT)
    db.close()
    keys = load_keys_file(text)
    assert list(keys) == [fingerprint(public)]
    _, other = generate_key()
    tampered = json.loads(text)
    tampered["keys"][0]["public_key"] = b64(other)  # an attacker's key under the evaluator's fingerprint
    with pytest.raises(SigningKeyError, match="its public key does not hash to its fingerprint"):
        load_keys_file(json.dumps(tampered))


# --- a real report --------------------------------------------------------------------------------


def test_a_real_pdf_report_is_signed_and_verified_and_one_flipped_byte_fails(
    influx: InfluxStore, tmp_path: Path
) -> None:
    site = load_site(ROOT / "examples" / "district.yaml")
    result = verify_claims(influx, site, COMMUNITY, YEAR)  # no readings: insufficient data, a real result
    private, key = _key()
    shown = [ShownSignature(SIGNER, key.fingerprint, SIGNED_AT, "ab" * 32)]
    html = render_html(site, result, "zh-CN", shown)
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    render_pdf(html, first, created=SIGNED_AT)
    render_pdf(html, second, created=SIGNED_AT)
    pdf = first.read_bytes()
    assert pdf == second.read_bytes(), "the same page printed twice differs"
    assert b"/CreationDate (D:20260302013005+00'00')" in pdf
    text = subprocess.run(["pdftotext", str(first), "-"], capture_output=True, text=True, check=True).stdout
    # (the table wraps the signer's name in its cell)
    assert "九、签名" in text
    assert "张三" in text
    assert short_fingerprint(key.fingerprint) in text

    document = _sign(pdf, private, artifact="report_pdf")
    assert verify(pdf, document, {key.fingerprint: key}).document.artifact == "report_pdf"
    flipped = bytearray(pdf)
    flipped[len(pdf) // 2] ^= 0x20
    assert _failure(bytes(flipped), document, {key.fingerprint: key}).code == "signature_file_changed"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_report_says_when_the_verdict_is_not_signed_and_escapes_signers(
    influx: InfluxStore, lang: str
) -> None:
    site = load_site(ROOT / "examples" / "district.yaml")
    result = verify_claims(influx, site, COMMUNITY, YEAR)
    unsigned = render_html(site, result, lang)
    words = {"zh-CN": ("九、签名", "未签名"), "en": ("9. Signature", "not signed")}[lang]
    assert f'<section id="signature"><h2>{words[0]}</h2><p class="unsigned"><b>{words[1]}' in unsigned
    _, key = _key()
    evil = render_html(
        site, result, lang, [ShownSignature("<script>x</script>", key.fingerprint, SIGNED_AT, "0" * 64)]
    )
    assert "<script>" not in evil
    assert "&lt;script&gt;x&lt;/script&gt;" in evil
    assert "2026-03-02 09:30:05 (UTC+8)" in evil  # signed at, in Asia/Shanghai


# --- the command line -----------------------------------------------------------------------------


def _jieshui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "evidence", *args],
        capture_output=True, text=True, check=False, timeout=60, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_the_command_line_signs_and_verifies_against_the_database_and_offline(tmp_path: Path) -> None:
    db = ["--db-url", f"sqlite:///{tmp_path}/jieshui.sqlite3"]
    key, pub = tmp_path / "evaluator.pem", tmp_path / "evaluator.pub"
    made = _jieshui("keygen", "--out", str(key), "--signer", SIGNER)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = pub.read_text().strip()
    fp = fingerprint(base64.b64decode(public))
    assert f"fingerprint: {fp}" in made.stdout
    assert _jieshui("keygen", "--out", str(key)).returncode == 2  # never over an existing key
    clash = _jieshui("keygen", "--out", str(tmp_path / "other.pub"))  # the .pub would overwrite it
    assert clash.returncode == 2
    assert "ends in .pub, where the public key goes" in clash.stderr
    assert not (tmp_path / "other.pub").exists()

    verdict = tmp_path / "verdict.json"
    verdict.write_bytes(VERDICT)
    signed = _jieshui("sign", str(verdict), "--key", str(key), "--signer", SIGNER)
    assert signed.returncode == 0, signed.stderr
    sig = tmp_path / "verdict.json.sig"
    document = parse_document(sig.read_text())
    assert (document.community, document.year, document.artifact) == (COMMUNITY, YEAR, "verdict_json")

    # not registered yet: refused, naming the key
    unregistered = _jieshui("verify", str(verdict), *db)
    assert unregistered.returncode == 1
    assert (
        f"NOT VERIFIED (signing_key_unregistered): signing key {fp} is not among the 0 registered"
        in unregistered.stderr
    )

    added = _jieshui("keys", "add", "--signer", SIGNER, "--public-key", str(pub), *db)
    assert added.returncode == 0, added.stderr
    assert _jieshui("keys", "add", "--signer", SIGNER, "--public-key", public, *db).returncode == 2
    ok = _jieshui("verify", str(verdict), *db)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == (
        f"{verdict}: signed by {SIGNER} ({fp}) on {document.signed_at}: verdict_json of {COMMUNITY} {YEAR}\n"
    )

    # offline, from the exported keys file
    keys = tmp_path / "keys.json"
    assert _jieshui("keys", "export", "--out", str(keys), *db).returncode == 0
    assert _jieshui("verify", str(verdict), "--keys", str(keys)).returncode == 0

    # one changed byte
    verdict.write_bytes(VERDICT.replace(b"7", b"8"))
    changed = _jieshui("verify", str(verdict), "--keys", str(keys))
    assert changed.returncode == 1
    assert (
        "NOT VERIFIED (signature_file_changed): the file changed after it was signed: its sha256 is"
        in changed.stderr
    )
    verdict.write_bytes(VERDICT)

    # the document edited by hand: the community moved
    edited = {**json.loads(sig.read_text()), "year": 2024}
    (tmp_path / "edited.sig").write_text(json.dumps(edited))
    moved = _jieshui("verify", str(verdict), "--sig", str(tmp_path / "edited.sig"), "--keys", str(keys))
    assert moved.returncode == 1
    assert "(signature_invalid)" in moved.stderr

    # another key, signing the same file: not registered
    other_key = tmp_path / "other.pem"
    assert _jieshui("keygen", "--out", str(other_key)).returncode == 0
    other_sig = tmp_path / "other.sig"
    assert (
        _jieshui(
            "sign", str(verdict), "--key", str(other_key), "--signer", SIGNER, "--out", str(other_sig)
        ).returncode
        == 0
    )
    stranger = _jieshui("verify", str(verdict), "--sig", str(other_sig), *db)
    assert stranger.returncode == 1
    assert "is not among the 1 registered signing key(s)" in stranger.stderr

    # revoked (by its short form): a signature made afterwards is refused, the earlier one stands
    revoked = _jieshui("keys", "revoke", short_fingerprint(fp), *db)
    assert revoked.returncode == 0
    assert revoked.stdout.startswith(f"revoked {fp} ({SIGNER}) on ")
    listed = _jieshui("keys", "list", *db).stdout
    assert listed.startswith(f"{fp}\t{short_fingerprint(fp)}\t{SIGNER}\tregistered ")
    assert "\trevoked " in listed
    assert _jieshui("verify", str(verdict), *db).returncode == 0
    late = tmp_path / "late.sig"
    assert (
        _jieshui("sign", str(verdict), "--key", str(key), "--signer", SIGNER, "--out", str(late)).returncode
        == 0
    )
    after = _jieshui("verify", str(verdict), "--sig", str(late), *db)
    assert after.returncode == 1
    assert "(signing_key_revoked)" in after.stderr

    # a report needs its community and year; a verdict of another community is refused
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 not really")
    assert (
        "--community and --year are needed"
        in _jieshui("sign", str(pdf), "--key", str(key), "--signer", SIGNER).stderr
    )
    wrong = _jieshui(
        "sign", str(verdict), "--key", str(key), "--signer", SIGNER, "--community", "xianxia-xicun"
    )
    assert wrong.returncode == 2
    assert f"is the verdict of {COMMUNITY} {YEAR}" in wrong.stderr


def test_an_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    secret = {"JIESHUI_SIGNING_PASSPHRASE": "correct horse battery staple"}
    assert _jieshui("keygen", "--out", str(key), env=secret).returncode == 0
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    verdict = tmp_path / "verdict.json"
    verdict.write_bytes(VERDICT)
    without = _jieshui("sign", str(verdict), "--key", str(key), "--signer", SIGNER,
                       env={"JIESHUI_SIGNING_PASSPHRASE": ""})  # fmt: skip
    assert without.returncode == 2
    assert "a passphrase is needed: set JIESHUI_SIGNING_PASSPHRASE" in without.stderr
    wrong = _jieshui("sign", str(verdict), "--key", str(key), "--signer", SIGNER,
                     env={"JIESHUI_SIGNING_PASSPHRASE": "wrong"})  # fmt: skip
    assert wrong.returncode == 2
    assert "the passphrase does not open the private key" in wrong.stderr
    assert _jieshui("sign", str(verdict), "--key", str(key), "--signer", SIGNER, env=secret).returncode == 0
