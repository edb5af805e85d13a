"""Signing keys and signatures through the API, on a real influxd (an empty database: every verdict is
insufficient_data, which is all a signature needs) and a real SQL database (SQLite, and PostgreSQL for
the verdict's flow): an evaluator's verdict and report PDF signed, recorded, shown in the report and
verified offline with the keys the API lists; every refusal named in zh-CN and en; a signed report
sealed against later verdict signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api import reports
from api.app import create_app
from api.auth import Role, create_key
from api.db import Database, VerificationRun
from api.deps import ApiContext
from evidence.signing import (
    SignatureDocument,
    SignatureFailure,
    b64,
    fingerprint,
    format_time,
    raw_public_key,
    short_fingerprint,
    sign,
    verify,
)
from evidence.signing_keys import load_keys_file
from jieshui.inventory import load_site
from store.influx import InfluxStore
from tests.api.conftest import AUTH_FAILURES, CACHES, OTHER, OWN, SITE, Api, db_url, pg_admin

__all__ = ["db_url", "pg_admin"]  # the fixtures, imported from tests/api/conftest.py

YEAR = 2025
START = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
VERIFICATION = f"/communities/{OWN}/verifications/{YEAR}"
SIGNATURES = f"{VERIFICATION}/signatures"
EVALUATOR = "区水务局 评审组 张三"


@pytest.fixture
def clock() -> Callable[[], dt.datetime]:
    """The API's clock: a second later at every look, so runs and signatures come in the order made."""
    ticks = itertools.count()
    return lambda: START + dt.timedelta(seconds=next(ticks))


def _api(db: str, store: InfluxStore, clock: Callable[[], dt.datetime]) -> Api:
    ctx = ApiContext(site=load_site(SITE), db=Database(db), store=store, clock=clock, **CACHES,
                     auth_failures=AUTH_FAILURES)  # fmt: skip
    api = Api(ctx, TestClient(create_app(ctx), raise_server_exceptions=False))
    with ctx.db.session() as s:
        for who, role, communities in [("admin", Role.ADMIN, []), ("evaluator", Role.EVALUATOR, []),
                                       ("manager", Role.MANAGER, [OWN])]:  # fmt: skip
            api.keys[who] = create_key(s, role, communities, who, "test", START)[1]
    return api


@pytest.fixture
def api(influx: InfluxStore, tmp_path: Path, clock: Callable[[], dt.datetime]) -> Iterator[Api]:
    made = _api(f"sqlite:///{tmp_path}/api.sqlite3", influx, clock)
    yield made
    made.client.close()
    made.ctx.db.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _register(api: Api, key: Ed25519PrivateKey, signer: str = EVALUATOR) -> dict[str, Any]:
    r = api.post("/signing-keys", json={"signer": signer, "public_key": b64(raw_public_key(key))})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _run(api: Api) -> VerificationRun:
    r = api.post(VERIFICATION, who="evaluator")
    assert r.status_code == 201, r.text
    with api.ctx.db.session() as s:
        run = s.get(VerificationRun, r.json()["id"])
    assert run is not None
    return run


def _sign(
    api: Api, data: bytes, key: Ed25519PrivateKey, artifact: Any = "verdict_json", signer: str = EVALUATOR
) -> SignatureDocument:
    return sign(data, key, artifact=artifact, community=OWN, year=YEAR, signer=signer,
                signed_at=api.ctx.now())  # fmt: skip


def _error(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_a_signed_verdict_is_recorded_shown_in_the_report_and_verifies_offline(
    db_url: str, influx: InfluxStore, clock: Callable[[], dt.datetime]
) -> None:
    api = _api(db_url, influx, clock)
    try:
        key = Ed25519PrivateKey.generate()
        fp = fingerprint(raw_public_key(key))
        registered = _register(api, key)
        assert registered["fingerprint"] == fp
        assert (
            registered["fingerprint_short"]
            == short_fingerprint(fp)
            == " ".join([fp[:4], fp[4:8], fp[8:12], fp[12:16]])
        )
        run = _run(api)

        served = api.get(VERIFICATION, who="evaluator")
        # what is signed is what the API serves, byte for byte, and the server computes the same bytes
        assert served.content == reports.verdict_json(run)
        report = api.get(f"{VERIFICATION}/report", who="manager")
        assert "九、签名" in report.text
        assert "未签名" in report.text
        english = api.get(f"{VERIFICATION}/report", who="manager", params={"lang": "en"})
        assert "9. Signature" in english.text
        assert "not signed" in english.text

        document = _sign(api, served.content, key)
        r = api.post(SIGNATURES, who="evaluator", json=document.model_dump())
        assert r.status_code == 201, r.text
        recorded = r.json()
        assert (recorded["artifact"], recorded["signer"], recorded["fingerprint"]) == (
            "verdict_json",
            EVALUATOR,
            fp,
        )
        assert recorded["latest_run"] is True
        assert recorded["document"] == document.model_dump()  # the .sig, given back as uploaded

        # the report names the signer and the key: 16 digits shown, the whole fingerprint in the tooltip
        report = api.get(f"{VERIFICATION}/report", who="manager")
        assert "未签名" not in report.text
        assert EVALUATOR in report.text
        assert f'<code title="{fp}">{short_fingerprint(fp)}</code>' in report.text
        local = (START.astimezone(dt.timezone(dt.timedelta(hours=8)))).strftime("%Y-%m-%d")
        assert local in report.text

        # every role reads the signatures of a community it sees; a manager's other community is 404
        listed = api.get(SIGNATURES, who="manager")
        assert listed.status_code == 200
        assert [s["id"] for s in listed.json()] == [recorded["id"]]
        assert (
            api.get(f"/communities/{OTHER}/verifications/{YEAR}/signatures", who="manager").status_code == 404
        )

        # offline: the listed .sig and the listed keys verify the file the evaluator downloaded
        keys = load_keys_file(api.get("/signing-keys", who="manager").text)
        saved = SignatureDocument.model_validate(listed.json()[0]["document"])
        assert verify(served.content, saved, keys).describe() == (
            f"signed by {EVALUATOR} ({fp}) on {document.signed_at}: verdict_json of {OWN} {YEAR}"
        )
        # the audit log has the registration and the signature
        actions = [e["action"] for e in api.get("/audit").json()]
        assert {"signing_key.register", "signature.record"} <= set(actions)
    finally:
        api.client.close()
        api.ctx.db.close()


def test_a_signed_report_pdf_is_sealed_and_verifies_until_a_byte_changes(
    api: Api, key: Ed25519PrivateKey
) -> None:
    _register(api, key)
    run = _run(api)
    verdict = api.get(VERIFICATION, who="evaluator").content
    assert (
        api.post(SIGNATURES, who="evaluator", json=_sign(api, verdict, key).model_dump()).status_code == 201
    )

    pdf = api.get(f"{VERIFICATION}/report", who="evaluator", params={"format": "pdf"}).content
    assert pdf[:5] == b"%PDF-"
    # printed again: the same bytes (the PDF's dates are the run's time)
    assert reports.report_pdf(api.ctx, run, "zh-CN") == pdf
    document = _sign(api, pdf, key, "report_pdf")
    checked = api.post(SIGNATURES, who="evaluator", params={"check": "true"}, json=document.model_dump(),
                       headers={"Accept-Language": "en"})  # fmt: skip
    assert checked.status_code == 200
    assert checked.json() == {
        "valid": True, "code": None, "lang": "en", "recorded_id": None,
        "message": f"signed by {EVALUATOR} ({document.fingerprint}) on {document.signed_at}: "
                   f"evaluation report (PDF) of {OWN} {YEAR}",
    }  # fmt: skip
    assert api.get(SIGNATURES).json()[-1]["artifact"] == "verdict_json"  # the check recorded nothing
    r = api.post(SIGNATURES, who="evaluator", json=document.model_dump())
    assert r.status_code == 201, r.text

    # a second evaluator signs the verdict afterwards: recorded and listed, but the signed report is
    # sealed: it is served unchanged, so the report's signature still holds for what is served
    second = Ed25519PrivateKey.generate()
    _register(api, second, "区水务局 评审组 李四")
    later = _sign(api, verdict, second, signer="区水务局 评审组 李四")
    assert api.post(SIGNATURES, who="evaluator", json=later.model_dump()).status_code == 201
    served = api.get(f"{VERIFICATION}/report", who="manager", params={"format": "pdf"}).content
    assert hashlib.sha256(served).hexdigest() == document.sha256
    html = api.get(f"{VERIFICATION}/report", who="manager").text
    assert EVALUATOR in html
    assert "李四" not in html
    listed = api.get(SIGNATURES, who="manager").json()
    assert [(s["artifact"], s["latest_run"]) for s in listed] == [
        ("verdict_json", True),
        ("report_pdf", True),
        ("verdict_json", True),
    ]
    keys = load_keys_file(api.get("/signing-keys").text)
    assert verify(served, document, keys).document.artifact == "report_pdf"
    changed = bytearray(served)
    changed[len(changed) // 2] ^= 0x01
    with pytest.raises(SignatureFailure) as failure:
        verify(bytes(changed), document, keys)
    assert failure.value.code == "signature_file_changed"
    assert str(failure.value) == (
        f"the file changed after it was signed: its sha256 is {hashlib.sha256(changed).hexdigest()}, "
        f"the signature is for {document.sha256}"
    )

    # a new run is another verdict: the old signatures stay listed, no longer of the latest run
    _run(api)
    assert [s["latest_run"] for s in api.get(SIGNATURES).json()] == [False, False, False]
    assert "未签名" in api.get(f"{VERIFICATION}/report").text


def test_every_refusal_names_what_does_not_hold(api: Api, key: Ed25519PrivateKey) -> None:
    fp = _register(api, key)["fingerprint"]
    verdict = _sign(api, b"{}", key)
    # before any run
    assert _error(api.post(SIGNATURES, who="evaluator", json=verdict.model_dump())) == (
        404,
        "verification_not_run",
    )
    _run(api)
    served = api.get(VERIFICATION).content

    def refused(
        document: SignatureDocument | dict[str, Any], lang: str = "en", **kw: Any
    ) -> tuple[int, str, str]:
        body = document.model_dump() if isinstance(document, SignatureDocument) else document
        r = api.post(SIGNATURES, who="evaluator", json=body, headers={"Accept-Language": lang}, **kw)
        assert r.status_code >= 400, r.text
        return r.status_code, r.json()["error"]["code"], r.json()["error"]["message"]

    # signed bytes that are not the verdict served
    other = _sign(api, served + b" ", key)
    assert refused(other) == (
        422, "signature_not_served",
        f"the signed bytes (sha256 {other.sha256}) are not the verdict (JSON) this API serves for the latest "
        f"verification of {OWN} {YEAR} (sha256 {hashlib.sha256(served).hexdigest()})",
    )  # fmt: skip
    good = _sign(api, served, key)
    # the document's fields edited after signing: the signature no longer holds
    for field, value in [("signer", "Somebody Else"), ("year", 2024), ("artifact", "report_pdf"),
                         ("signed_at", "2026-01-05T01:00:00Z"), ("sha256", hashlib.sha256(b"x").hexdigest())]:  # fmt: skip
        edited = {**good.model_dump(), field: value}
        status, code, _ = refused(edited)
        want = "signature_scope_mismatch" if field == "year" else "signature_invalid"
        assert (status, code) == (422, want), field
    moved = {**good.model_dump(), "community": OTHER}
    assert refused(moved)[:2] == (422, "signature_scope_mismatch")  # to another community's path: invalid
    r = api.post(f"/communities/{OTHER}/verifications/{YEAR}/signatures", who="evaluator", json=moved)
    assert _error(r) == (422, "signature_invalid")
    assert refused({**good.model_dump(), "signer": "Somebody Else"}, "zh-CN")[2] == (
        f"签名无法用密钥 {fp}（{EVALUATOR}）验证：签名文件在签署后被改动（签名人、小区、年份、内容、时间或哈希），"
        "或并非由该密钥签署"
    )
    # a key nobody registered
    stranger = Ed25519PrivateKey.generate()
    unknown = _sign(api, served, stranger)
    assert refused(unknown) == (
        422, "signing_key_unregistered",
        f"the signing key (fingerprint {unknown.fingerprint}) is not among the registered signing keys: "
        "the signature cannot be trusted",
    )  # fmt: skip
    assert (
        refused(unknown, "zh-CN")[2]
        == f"签名所用的密钥（指纹 {unknown.fingerprint}）不在已登记的签名密钥中，签名不可信"
    )
    # the registered key, another name
    assert refused(_sign(api, served, key, signer="张三"))[:2] == (422, "signer_mismatch")
    # from the future
    future = sign(served, key, artifact="verdict_json", community=OWN, year=YEAR, signer=EVALUATOR,
                  signed_at=api.ctx.now() + dt.timedelta(hours=1))  # fmt: skip
    assert refused(future)[:2] == (422, "signed_in_future")
    # malformed documents are invalid requests
    assert refused({**good.model_dump(), "signature": "abc"})[:2] == (422, "invalid_request")
    assert refused({**good.model_dump(), "signed_at": "2026-02-30T00:00:00Z"})[:2] == (422, "invalid_request")

    # recorded once; the same again is a conflict; a check says it is recorded
    r = api.post(SIGNATURES, who="evaluator", json=good.model_dump())
    assert r.status_code == 201
    assert refused(good)[:2] == (409, "signature_exists")
    checked = api.post(SIGNATURES, who="evaluator", json=good.model_dump(), params={"check": "true"}).json()
    assert (checked["valid"], checked["recorded_id"]) == (True, r.json()["id"])
    # a check of a bad one answers 200 with the refusal it would get
    checked = api.post(SIGNATURES, json=unknown.model_dump(), params={"check": "true"}).json()
    assert (checked["valid"], checked["code"], checked["lang"]) == (
        False,
        "signing_key_unregistered",
        "zh-CN",
    )

    # revoked: refused from then on, whatever time the document claims; the recorded one stays
    revoked = api.post("/signing-keys/revoke", json={"fingerprint": fp})
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    again = api.post("/signing-keys/revoke", json={"fingerprint": fp}).json()
    assert again["revoked_at"] == revoked.json()["revoked_at"]  # the first revocation stands
    backdated = sign(served + b"\n", key, artifact="verdict_json", community=OWN, year=YEAR, signer=EVALUATOR,
                     signed_at=START - dt.timedelta(days=1))  # fmt: skip
    assert refused(backdated)[:2] == (422, "signing_key_revoked")
    assert [s["key_revoked_at"] is not None for s in api.get(SIGNATURES).json()] == [True]
    assert EVALUATOR in api.get(f"{VERIFICATION}/report").text

    # managers read but do not sign; a missing key is 404
    assert _error(api.post(SIGNATURES, who="manager", json=good.model_dump())) == (403, "forbidden_role")
    missing = api.post("/signing-keys/revoke", json={"fingerprint": "0" * 64})
    assert _error(missing) == (404, "signing_key_not_found")


def test_keys_are_registered_by_admins_once_and_must_be_ed25519_public_keys(
    api: Api, key: Ed25519PrivateKey
) -> None:
    public = b64(raw_public_key(key))
    assert _error(api.post("/signing-keys", who="evaluator", json={"signer": "x", "public_key": public})) == (
        403, "forbidden_role"
    )  # fmt: skip
    first = _register(api, key)
    r = api.post(
        "/signing-keys", json={"signer": "Another", "public_key": public}, headers={"Accept-Language": "en"}
    )
    assert _error(r) == (409, "signing_key_exists")
    assert r.json()["error"]["message"] == (
        f"this public key is registered already (fingerprint {first['fingerprint']}, signer {EVALUATOR}, "
        f"{format_time(dt.datetime.fromisoformat(first['registered_at']))})"
    )
    from cryptography.hazmat.primitives import serialization

    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()  # fmt: skip
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    cases = [
        (private_pem, "这是私钥：请提供公钥（keygen 已输出）；私钥须保密"),
        (b64(b"\x01" * 31), "Ed25519 公钥为 32 字节，此处为 31 字节"),
        ("not a key", "既不是 32 字节公钥的 base64，也不是 PEM 格式的公钥"),
    ]
    for text, reason in cases:
        r = api.post("/signing-keys", json={"signer": "x", "public_key": text})
        assert _error(r) == (422, "invalid_public_key")
        assert r.json()["error"]["message"] == f"公钥无效：{reason}"
    # a PEM public key is as good as base64, and names the same key
    assert _error(api.post("/signing-keys", json={"signer": "x", "public_key": public_pem})) == (
        409,
        "signing_key_exists",
    )
    listed = api.get("/signing-keys", who="manager").json()
    assert [k["fingerprint"] for k in listed] == [first["fingerprint"]]
    assert json.loads(json.dumps(listed))[0]["public_key"] == public
