"""`evaluate` on hand-made series (no server): findings that need no simulated year."""

from __future__ import annotations

import numpy as np

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
