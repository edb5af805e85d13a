"""Verification for evaluators, keys and tokens, errors, migrations and the `jieshui api` server, against a
real influxd and real SQL databases."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import inspect

from api.db import Base, Database
from jieshui.services import InfluxServer, free_port
from tests.api.conftest import NOW, OTHER, OWN, SITE, Api, District, make_api
from verification.engine import verify


def test_evaluator_runs_verification_downloads_reports_and_records_a_decision(
    api: Api, district: District
) -> None:
    before = api.get(
        f"/communities/{OWN}/verifications/2025", who="evaluator", headers={"Accept-Language": "en"}
    )
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "verification_not_run"

    run = api.post(f"/communities/{OWN}/verifications/2025", who="evaluator")
    assert run.status_code == 201, run.text
    body = run.json()
    direct = verify(district.store, district.site, OWN, 2025)
    assert {c["id"]: c["verdict"] for c in body["result"]["claims"]} == {
        c.id: c.verdict for c in direct.claims
    }
    # twelve days of data in 2025: not enough for any claim, and the API says so as one word
    assert body["overall"] == "insufficient_data"
    assert body["result"]["schema"] == "jieshui.verification/1"

    fetched = api.get(f"/communities/{OWN}/verifications/2025", who="manager").json()
    assert fetched["id"] == body["id"]
    assert fetched["result"] == body["result"]

    zh = api.get(f"/communities/{OWN}/verifications/2025/report", who="manager")
    en = api.get(f"/communities/{OWN}/verifications/2025/report", who="manager", params={"lang": "en"})
    assert zh.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in zh.text  # zh-CN is the default
    assert "新泾六村" in zh.text
    assert '<html lang="en">' in en.text
    assert "Xinjing No. 6 Village" in en.text
    assert en.headers["content-language"] == "en"
    pdf = api.get(f"/communities/{OWN}/verifications/2025/report", who="evaluator", params={"format": "pdf"})
    assert pdf.status_code == 200
    assert pdf.content[:5] == b"%PDF-"

    # managers read verdicts but neither run them nor decide
    assert api.post(f"/communities/{OWN}/verifications/2025", who="manager").status_code == 403
    decision = api.post(
        f"/communities/{OWN}/verifications/2025/decisions",
        who="evaluator",
        json={"decision": "on_site_inspection", "notes": "数据不足，需现场核查雨水回用量"},
    )
    assert decision.status_code == 201, decision.text
    d = decision.json()
    assert d["run_id"] == body["id"]
    assert d["decided_by"] == api.keys["evaluator"].split("_")[1]
    assert dt.datetime.fromisoformat(d["decided_at"]) == NOW
    assert api.get(f"/communities/{OWN}/verifications/2025/decisions", who="manager").json() == [d]

    table = api.get("/districts/changning/verdicts", who="evaluator", params={"year": 2025}).json()
    rows = {r["community"]: r for r in table["communities"]}
    assert len(rows) == 8
    assert rows[OWN]["overall"] == "insufficient_data"
    assert rows[OWN]["decision"]["decision"] == "on_site_inspection"
    assert rows[OTHER]["overall"] is None  # not run yet
    mine = api.get("/districts/changning/verdicts", who="manager", params={"year": 2025}).json()
    assert [r["community"] for r in mine["communities"]] == [OWN]

    actions = [a["action"] for a in api.get("/audit").json()]
    assert actions[:2] == ["decision.record", "verification.run"]


def test_a_future_year_and_a_bad_decision_are_refused(sqlite_api: Api) -> None:
    future = sqlite_api.get(f"/communities/{OWN}/verifications/2027", headers={"Accept-Language": "en"})
    assert future.status_code == 422
    assert future.json()["error"]["code"] == "year_out_of_range"
    bad = sqlite_api.post(
        f"/communities/{OWN}/verifications/2025/decisions",
        json={"decision": "maybe"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert bad.status_code == 422
    err = bad.json()["error"]
    assert err["code"] == "invalid_request"
    assert err["message"].startswith("请求无效")
    assert err["details"][0]["loc"] == ["body", "decision"]


def test_error_messages_follow_accept_language(sqlite_api: Api) -> None:
    for header, lang, text in [
        ("en-US,en;q=0.9", "en", "missing or invalid credentials"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", "缺少或无效的凭据"),
        ("fr-FR, en;q=0.5", "en", "missing or invalid credentials"),
        ("", "zh-CN", "缺少或无效的凭据"),
    ]:
        r = sqlite_api.get("/communities", who=None, headers={"Accept-Language": header})
        assert r.status_code == 401
        assert r.json()["error"]["lang"] == lang
        assert r.json()["error"]["message"].startswith(text)
        assert r.headers["www-authenticate"] == "Bearer"


def test_keys_are_stored_hashed_tokens_expire_and_revocation_kills_both(sqlite_api: Api) -> None:
    api = sqlite_api
    created = api.post("/keys", json={"role": "manager", "communities": [OWN], "label": "物业 张"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    key_id = created.json()["id"]
    assert key.startswith(f"jsk_{key_id}_")
    with api.ctx.db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT secret_sha256 FROM api_keys WHERE id = ?", (key_id,)).scalar()
    assert stored is not None
    assert key.split("_", 2)[2] not in stored  # only the hash is kept
    assert "key" not in api.get("/keys").json()[0]

    token = api.client.post("/auth/token", data={"grant_type": "client_credentials", "client_secret": key})
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert api.client.get("/me", headers=bearer).json()["communities"] == [OWN]
    # the key itself also works as a bearer token
    assert api.client.get("/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert (
        api.client.post("/auth/token", data={"grant_type": "implicit", "client_secret": key}).status_code
        == 400
    )

    assert api.delete(f"/keys/{key_id}").status_code == 204
    for headers in (bearer, {"X-API-Key": key}):
        r = api.client.get("/me", headers={**headers, "Accept-Language": "en"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] in ("key_revoked", "unauthenticated")
    assert api.delete("/keys/nope").status_code == 404

    bad_scope = api.post("/keys", json={"role": "manager", "communities": ["atlantis"]})
    assert bad_scope.status_code == 422
    assert bad_scope.json()["error"]["code"] == "invalid_communities"


def test_an_expired_token_is_refused_with_its_own_code(district: District, tmp_path: Path) -> None:
    api = make_api(district, f"sqlite:///{tmp_path}/t.sqlite3")
    token = api.client.post("/auth/token", data={"grant_type": "password", "password": api.keys["evaluator"]})
    later = make_api(district, f"sqlite:///{tmp_path}/t.sqlite3", now=NOW + dt.timedelta(hours=2))
    r = later.client.get(
        "/me", headers={"Authorization": f"Bearer {token.json()['access_token']}", "Accept-Language": "en"}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_expired"


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    db = Database(db_url)
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        Database(db_url).close()  # a second upgrade is a no-op
    finally:
        db.close()


def _wait_http(url: str, timeout_s: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_jieshui_api_serves_docs_and_keys_from_the_cli(
    district: District, influx_server: InfluxServer, tmp_path: Path
) -> None:
    env = {**os.environ, "JIESHUI_DB_URL": f"sqlite:///{tmp_path}/cli.sqlite3", "JIESHUI_INFLUX_URL": influx_server.url,
           "JIESHUI_INFLUX_DATABASE": "api_district"}  # fmt: skip
    jieshui = [sys.executable, "-m", "jieshui.cli"]
    created = subprocess.run([*jieshui, "keys", "create", "--role", "manager", "--community", OWN,
                              "--site", str(SITE), "--label", "王丽"], env=env, capture_output=True, text=True, check=True)  # fmt: skip
    key = created.stdout.strip()
    assert key.startswith("jsk_")
    assert len(created.stdout.splitlines()) == 1  # the key alone on stdout, printed once
    refused = subprocess.run([*jieshui, "keys", "create", "--role", "manager", "--community", "atlantis",
                              "--site", str(SITE)], env=env, capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2
    assert "atlantis" in refused.stderr
    listed = subprocess.run(
        [*jieshui, "keys", "list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "manager" in listed
    assert key not in listed

    port = free_port()
    server = subprocess.Popen([*jieshui, "api", "--site", str(SITE), "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_http(f"{base}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{base}/docs").status_code == 200
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/communities/{community_id}/status" in spec["paths"]
        assert httpx.get(f"{base}/communities").status_code == 401
        mine = httpx.get(f"{base}/communities", headers={"X-API-Key": key}).json()
        assert [c["id"] for c in mine] == [OWN]
        assert httpx.get(f"{base}/communities/{OTHER}/status", headers={"X-API-Key": key}).status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=10)
