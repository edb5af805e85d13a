"""The cycle's phases and the evaluation rules, pure."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from programme.cycle import Cycle, Phase, Window, default_cycle, parse_deadline
from programme.evaluation import Result, evidence, result_problems


def test_the_notices_cycle_moved_to_a_year() -> None:
    c = default_cycle(2026)
    assert c.deadline == dt.date(2026, 10, 18)
    assert c.evaluation == Window(start=dt.date(2027, 2, 1), end=dt.date(2027, 4, 30))
    assert c.reporting_period == (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    assert c.open_phases(dt.date(2026, 10, 18)) == [Phase.APPLICATION]
    assert c.open_phases(dt.date(2026, 10, 19)) == []
    assert c.open_phases(dt.date(2026, 11, 15)) == [Phase.TRAINING, Phase.GUIDANCE]
    assert c.open_phases(dt.date(2027, 5, 20)) == [Phase.NAMING]
    assert default_cycle(2026, parse_deadline("10-25")).deadline == dt.date(2026, 10, 25)


@pytest.mark.parametrize("text", ["18-10", "10/18", "1018", "02-30"])
def test_a_bad_deadline_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=text.replace("/", ".")):
        parse_deadline(text)


def test_phases_out_of_order_are_refused() -> None:
    c = default_cycle(2026).model_dump()
    c["evaluation"] = {"start": dt.date(2026, 10, 1), "end": dt.date(2026, 10, 30)}
    with pytest.raises(ValidationError, match="applications must close"):
        Cycle.model_validate(c)
    with pytest.raises(ValidationError, match="ends 2026-01-01 before it starts 2026-02-01"):
        Window(start=dt.date(2026, 2, 1), end=dt.date(2026, 1, 1))


def codes(problems: list[tuple[str, dict[str, object]]]) -> list[str]:
    return [c for c, _ in problems]


def test_result_rules() -> None:
    assert result_problems(Result.NOT_PASSED, None, None, False, 2025) == []
    assert codes(result_problems(Result.WATER_SAVING, None, None, False, 2025)) == [
        "no_verification",
        "fixtures_not_entered",
    ]
    assert codes(result_problems(Result.WATER_SAVING, 98.5, "verified", False, 2025)) == [
        "fixtures_below_target"
    ]
    assert result_problems(Result.WATER_SAVING, 100, "partly_verified", False, 2025) == []
    assert codes(result_problems(Result.WATER_SAVING, 100, "insufficient_data", False, 2025)) == [
        "water_saving_needs_evidence"
    ]
    assert codes(result_problems(Result.BENCHMARK, 100, "partly_verified", False, 2025)) == [
        "not_a_benchmark_applicant",
        "benchmark_needs_all_verified",
    ]
    assert result_problems(Result.BENCHMARK, 100, "verified", True, 2025) == []


def test_evidence_from_a_verification_result() -> None:
    result = {
        "figures": {
            "rainwater.reuse_m3": 1500.25,
            "river-pump.river_water_m3": 480.0,
            "car-wash.l_per_wash": 1.42,
        },
        "meters": [{"valid_day_share": 1.0}, {"valid_day_share": 0.9}],
    }
    assert evidence(result) == {
        "reuse_m3": 1500.25,
        "river_water_m3": 480.0,
        "l_per_car": 1.42,
        "coverage": 0.95,
    }
    assert evidence({"figures": {}, "meters": []}) == dict.fromkeys(
        ("reuse_m3", "river_water_m3", "l_per_car", "coverage")
    )
