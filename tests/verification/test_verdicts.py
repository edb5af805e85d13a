"""Verdicts on simulated years with known truth: honest claims verified close to the truth; inflated
claims, a tampered totalizer, a stuck meter, a claim beyond the rainfall and a month of missing data
each caught by the check that should catch them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jieshui.inventory import Site
from tests.verification.conftest import ROOT, YEAR, SimulatedYear
from verification.engine import verify
from verification.result import ClaimResult, VerificationResult


def _claims(result: VerificationResult) -> dict[str, ClaimResult]:
    return {c.id: c for c in result.claims}


def _with_claims(site: Site, values: dict[str, float]) -> Site:
    raw = site.model_dump()
    for claim in raw["districts"][0]["communities"][0]["claims"]:
        if claim["id"] in values:
            claim["value"] = values[claim["id"]]
    return Site.model_validate(raw)


def test_honest_claims_are_verified_within_5_percent_of_the_truth(honest_year: SimulatedYear) -> None:
    result = verify(honest_year.store, honest_year.site, "xinjing-6", YEAR)
    claims = _claims(result)
    assert {c.verdict for c in claims.values()} == {"verified"}, {
        k: (c.verdict, c.reasons) for k, c in claims.items()
    }
    truth_reuse = honest_year.total("rw-controller", "supply_m3")
    assert claims["rainwater-daily"].annualized == pytest.approx(truth_reuse, rel=0.05)
    assert claims["river-yearly"].measured == pytest.approx(
        honest_year.total("river-pump-1", "volume_m3"), rel=0.05
    )
    truth_l_per_car = (
        honest_year.total("car-wash-1", "fresh_m3") * 1000 / honest_year.total("car-wash-1", "wash_count")
    )
    assert claims["micro-wash"].measured == pytest.approx(truth_l_per_car, rel=0.05)
    for claim in claims.values():
        assert claim.interval is not None
        assert claim.interval[0] <= claim.measured <= claim.interval[1]  # type: ignore[operator]
    assert all(m.sufficient for m in result.meters)
    # measured vs estimated vs verified: an honest year rests on the meters alone, digests not checked
    river = claims["river-yearly"]
    assert river.basis is not None
    assert (river.basis.device, river.basis.quantity, river.basis.estimated) == (
        "river-pump-1",
        "volume_m3",
        0.0,
    )
    assert river.basis.verified == river.basis.measured == pytest.approx(river.measured)
    assert river.basis.evidence == "not_checked"


@pytest.mark.parametrize("inflation", [1.3, 2.5])
def test_claims_inflated_by_30_percent_or_more_are_not_verified(
    honest_year: SimulatedYear, inflation: float
) -> None:
    measured = _claims(verify(honest_year.store, honest_year.site, "xinjing-6", YEAR))
    inflated = _with_claims(honest_year.site, {
        "rainwater-daily": measured["rainwater-daily"].measured * inflation,  # type: ignore[operator]
        "river-yearly": measured["river-yearly"].measured * inflation,  # type: ignore[operator]
        "micro-wash": measured["micro-wash"].measured / inflation,  # type: ignore[operator]  # fewer litres: more saving
    })  # fmt: skip
    claims = _claims(verify(honest_year.store, inflated, "xinjing-6", YEAR))
    for name in ("rainwater-daily", "river-yearly", "micro-wash"):
        assert claims[name].verdict != "verified", name
        assert claims[name].fraction == pytest.approx(1 / inflation, rel=0.01)
        expected = "partly_verified" if inflation < 2 else "not_verified"  # below half the claim
        assert claims[name].verdict == expected


def test_a_claim_beyond_what_the_rainfall_allows_is_not_verified(honest_year: SimulatedYear) -> None:
    site = _with_claims(honest_year.site, {"rainwater-daily": 20.0})  # the notice's capacity figure
    claim = _claims(verify(honest_year.store, site, "xinjing-6", YEAR))["rainwater-daily"]
    assert claim.verdict == "not_verified"
    assert "claim_exceeds_rainfall" in [r.code for r in claim.reasons]
    reason = next(r for r in claim.reasons if r.code == "claim_exceeds_rainfall")
    assert "7300" in reason.en
    assert "降雨" in reason.zh


def test_tampered_totalizer_is_caught(faulty_year: SimulatedYear) -> None:
    claim = _claims(verify(faulty_year.store, faulty_year.site, "xinjing-6", YEAR))["rainwater-daily"]
    assert claim.verdict == "not_verified"
    codes = [r.code for r in claim.reasons]
    assert "supply_exceeds_treated" in codes
    assert "tank_balance" in codes  # the level does not fall as the inflated supply says it should


def test_stuck_meter_is_caught(faulty_year: SimulatedYear) -> None:
    result = verify(faulty_year.store, faulty_year.site, "xinjing-6", YEAR)
    claim = _claims(result)["per-capita"]
    assert claim.verdict == "not_verified"
    stuck = [r for r in claim.reasons if r.code == "stuck_meter"]
    assert stuck
    assert "2025-03-10" in stuck[0].en
    audit = next(m for m in result.meters if m.device == "master-meter" and m.quantity == "volume_m3")
    assert audit.flat_runs[0][0] == "2025-03-10"  # the edit log records the stuck run too


def test_a_month_with_missing_data_is_insufficient_with_the_gap_shown(faulty_year: SimulatedYear) -> None:
    result = verify(faulty_year.store, faulty_year.site, "xinjing-6", YEAR)
    claim = _claims(result)["river-yearly"]
    assert claim.verdict == "insufficient_data"
    assert claim.measured is None  # never silently interpolated
    audit = next(m for m in result.meters if m.device == "river-pump-1" and m.quantity == "volume_m3")
    assert not audit.sufficient
    assert audit.month_valid_share["06"] < 0.9
    assert all(share >= 0.9 for month, share in audit.month_valid_share.items() if month != "06")
    # the last reading before the silence is stamped 23:55 local on 4 June, the next 00:00 on 12 June
    assert any(
        g.start.startswith("2025-06-04T15:55") and g.end.startswith("2025-06-11T16:00") for g in audit.gaps
    )
    assert "06" in next(r for r in claim.reasons if r.code == "insufficient_data").en


def test_verify_command_prints_versioned_json(honest_year: SimulatedYear, influx_server) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "verify", "--site", "examples/community.yaml", "--community",
         "xinjing-6", "--year", str(YEAR), "--json", "--influx-url", influx_server.url,
         "--influx-database", "t_ver_honest"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["schema"] == "jieshui.verification/1"
    assert {c["verdict"] for c in body["claims"]} <= {
        "verified",
        "partly_verified",
        "not_verified",
        "insufficient_data",
    }
    text = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "verify", "--site", "examples/community.yaml", "--community",
         "xinjing-6", "--year", str(YEAR), "--influx-url", influx_server.url, "--influx-database", "t_ver_honest"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert "新泾六村 (xinjing-6) 2025: 核查结论" in text.stdout
    assert "已核实" in text.stdout


def test_verify_command_refuses_an_unknown_community() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "verify", "--site", "examples/community.yaml", "--community", "nope",
         "--year", "2025"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no community 'nope' in examples/community.yaml" in result.stderr
