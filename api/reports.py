"""What the API serves for a verification run, byte for byte: the verdict JSON (the body of
`GET /communities/{id}/verifications/{year}`) and the evaluation report (HTML, PDF) with the signatures
of the verdict it presents. The verification routes serve these bytes and the signing routes check
uploaded signatures against the same bytes (docs/evidence.md, "Signatures").

Both are deterministic for a run: the verdict is the stored run serialized as FastAPI serializes the
route's response model, and the PDF's dates are the run's time (verification.report.render_pdf). The
report lists the verdict's signatures; once a signature of the report itself is recorded for the run,
the report is sealed: it keeps listing the verdict signatures recorded before that one, so the bytes
signed stay the bytes served.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from api.db import VerificationRun
from api.deps import ApiContext
from api.schemas import VerificationRunPublic
from api.workflow import claim_verdicts, overall
from evidence import signing_keys
from evidence.signing import SignatureFailure, registered_key, sha256_hex, verify_document
from jieshui.errors import JieshuiError
from verification.report import ShownSignature, render_html, render_pdf
from verification.result import VerificationResult

_RUN_JSON = TypeAdapter(VerificationRunPublic)


def run_public(row: VerificationRun) -> VerificationRunPublic:
    return VerificationRunPublic(
        id=row.id,
        community=row.community,
        year=row.year,
        run_at=row.run_at,
        run_by=row.run_by,
        overall=overall(list(claim_verdicts(row.result).values())),
        result=row.result,
    )


def verdict_json(row: VerificationRun) -> bytes:
    """The verdict JSON of a run: exactly the body `GET .../verifications/{year}` answers with (FastAPI
    serializes a response model with pydantic's dump_json, aliases on; a test holds the two equal)."""
    return _RUN_JSON.dump_json(run_public(row), by_alias=True)


def shown_signatures(session: Session, run: VerificationRun) -> list[ShownSignature]:
    """The signatures the run's report lists: of this run's verdict JSON (by its SHA-256), each one
    checked again against its registered key, in the order recorded; only those recorded before the
    first signature of this run's report, if there is one (a signed report is sealed)."""
    verdict_sha = sha256_hex(verdict_json(run))
    rows = signing_keys.recorded(session, run.community, run.year)
    seal = min(
        (s.id for s, _ in rows if s.artifact == "report_pdf" and s.recorded_at >= run.run_at), default=None
    )
    shown = []
    for sig, key in rows:
        if sig.artifact != "verdict_json" or sig.sha256 != verdict_sha:
            continue
        if seal is not None and sig.id > seal:
            continue
        document = signing_keys.document_of(sig, key)
        try:
            # without the key's revocation: a signature recorded before it stays (a revoked key is
            # refused for new signatures), and the sealed report must not change
            registered = registered_key(key.fingerprint, key.signer, key.public_key, key.registered_at)
            verify_document(document, {key.fingerprint: registered})
        except (SignatureFailure, JieshuiError):  # a row that does not verify is no signature
            continue
        shown.append(ShownSignature(key.signer, key.fingerprint, document.signed_time(), sig.sha256))
    return shown


def report_html(ctx: ApiContext, run: VerificationRun, lang: str) -> str:
    """The run's evaluation report as HTML, listing its verdict's signatures."""
    with ctx.db.session() as s:
        signatures = shown_signatures(s, run)
    return render_html(ctx.registry(), VerificationResult.model_validate(run.result), lang, signatures)


def report_pdf(ctx: ApiContext, run: VerificationRun, lang: str) -> bytes:
    """The run's evaluation report as PDF (Chromium), the same bytes for the same run and signatures."""
    html = report_html(ctx, run, lang)
    with tempfile.TemporaryDirectory(prefix="jieshui-report-") as tmp:
        pdf = Path(tmp) / "report.pdf"
        render_pdf(html, pdf, created=run.run_at)
        return pdf.read_bytes()
