"""`evaluate` on hand-made series (no server): findings that need no simulated year."""

from __future__ import annotations

import numpy as np
import pytest

from devices.profile import DeviceKind
from jieshui.inventory import load_site
from tests.verification.conftest import ROOT
from verification.engine import Series, evaluate

Y2025 = (20089 * 86400 - 8 * 3600) * 10**9
HOUR = 3600 * 10**9


def test_clock_skew_and_missing_meters_are_reported() -> None:
    site = load_site(ROOT / "examples" / "community.yaml")
    t = Y2025 + np.arange(1, 49, dtype=np.int64) * HOUR
    skew = np.full(48, np.nan)
    skew[[3, 9]] = [3600.0, -900.0]
    wash = Series("car-wash-1", DeviceKind.CAR_WASH, "wx-cw01@1", 60.0, t,
                  {"wash_count": np.arange(48.0), "fresh_m3": np.arange(48.0) / 1000, "recycled_m3": np.zeros(48),
                   "wash_l": np.ones(48), "clock_skew_s": skew})  # fmt: skip
    result = evaluate(site, "xinjing-6", 2025, {"car-wash-1": wash})
    skewed = [c for c in result.checks if c.code == "clock_skew"]
    assert len(skewed) == 1
    assert skewed[0].en.startswith(
        "car-wash-1: 2 reading(s) came from a clock more than 2 minutes off (worst 3600 s)"
    )
    assert "时钟偏差" in skewed[0].zh
    claims = {c.id: c for c in result.claims}
    # two days of data in a year: insufficient, never extrapolated
    assert claims["micro-wash"].verdict == "insufficient_data"
    assert claims["micro-wash"].measured is None
    # no data at all for the other meters
    assert claims["river-yearly"].verdict == "insufficient_data"
    assert [r.code for r in claims["river-yearly"].reasons] == ["no_meter_data"]


def test_pump_energy_out_of_physics_makes_the_river_claim_not_verified() -> None:
    site = load_site(ROOT / "examples" / "community.yaml")
    hours = np.arange(1, 365 * 24 + 1, dtype=np.int64)
    t = Y2025 + hours * HOUR
    pumped = (hours % 24 == 18) * 1.3  # 1.3 m3 a day, 475 m3 a year
    volume = 1000 + np.cumsum(pumped)
    runtime = 50 + np.cumsum(pumped / 12)  # at the rated 12 m3/h
    for kwh_per_m3, expected in ((0.16, None), (3.2, "pump_energy")):
        energy = 20 + np.cumsum(pumped * kwh_per_m3)
        pump = Series("river-pump-1", DeviceKind.RIVER_PUMP, "hs-rp55@1", 3600.0, t,
                      {"volume_m3": volume, "runtime_h": runtime, "energy_kwh": energy})  # fmt: skip
        result = evaluate(site, "xinjing-6", 2025, {"river-pump-1": pump})
        claim = next(c for c in result.claims if c.id == "river-yearly")
        codes = [r.code for r in claim.reasons]
        assert result.figures["river-pump.pump_kwh_per_m3"] == pytest.approx(kwh_per_m3, rel=0.01)
        if expected is None:
            assert claim.verdict == "verified", codes
        else:
            assert claim.verdict == "not_verified"
            assert codes == [expected]
