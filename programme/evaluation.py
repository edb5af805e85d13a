"""The evaluator's checklist (一听、二看、三查、四评: listen, look, check, assess) and the rules of the
final result, and the evidence the naming list quotes. Pure: values in, verdicts and problems out.

- listen (听): the community's report on its measures; look (看): the on-site inspection, which also
  gives the share of water-saving fixtures (target 100 %, DOMAIN.md); check (查): filled from the
  verification verdicts of the reporting year; assess (评): the result.
- A result other than `not_passed` needs the fixtures at 100 % and a verification run; `benchmark`
  (节约用水示范（标杆）小区) needs the community to have applied as one, and every claim verified;
  `water_saving` (节水型小区) needs no claim refuted and none without data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

FIXTURE_TARGET_PCT = 100.0


class Result(StrEnum):
    BENCHMARK = "benchmark"  # 节约用水示范（标杆）小区
    WATER_SAVING = "water_saving"  # 节水型小区
    NOT_PASSED = "not_passed"  # 未通过


RESULT_NAMES: dict[Result, tuple[str, str]] = {
    Result.BENCHMARK: ("节约用水示范（标杆）小区", "benchmark water-saving community"),
    Result.WATER_SAVING: ("节水型小区", "water-saving community"),
    Result.NOT_PASSED: ("未通过", "not passed"),
}

#: code -> (zh-CN, en) of the reasons a result is refused.
RESULT_PROBLEMS: dict[str, tuple[str, str]] = {
    "no_verification": (
        "{year} 年尚无核验结果，无法评定（先运行核验）",
        "no verification for {year} yet: run it first",
    ),
    "fixtures_below_target": (
        "节水器具普及率 {pct}% 未达 100%",
        "water-saving fixtures at {pct}%, below 100%",
    ),
    "fixtures_not_entered": (
        "尚未填写节水器具普及率（现场查看）",
        "the fixture adoption rate (on-site inspection) is not entered",
    ),
    "not_a_benchmark_applicant": (
        "该小区未申报示范（标杆）小区",
        "the community did not apply as a benchmark community",
    ),
    "benchmark_needs_all_verified": (
        "示范小区要求全部声明核验通过，当前结论：{overall}",
        "a benchmark needs every claim verified; overall: {overall}",
    ),
    "water_saving_needs_evidence": (
        "节水型小区要求无声明被否定或缺数据，当前结论：{overall}",
        "a water-saving community needs no claim refuted or without data; overall: {overall}",
    ),
}


def result_problems(
    result: Result,
    fixture_adoption_pct: float | None,
    overall: str | None,
    applied_benchmark: bool,
    year: int,
) -> list[tuple[str, dict[str, Any]]]:
    """Why `result` cannot be given (empty: it can). `overall` is the latest run's overall verdict."""
    if result is Result.NOT_PASSED:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    if overall is None:
        out.append(("no_verification", {"year": year}))
    if fixture_adoption_pct is None:
        out.append(("fixtures_not_entered", {}))
    elif fixture_adoption_pct < FIXTURE_TARGET_PCT:
        out.append(("fixtures_below_target", {"pct": f"{fixture_adoption_pct:g}"}))
    if result is Result.BENCHMARK:
        if not applied_benchmark:
            out.append(("not_a_benchmark_applicant", {}))
        if overall is not None and overall != "verified":
            out.append(("benchmark_needs_all_verified", {"overall": overall}))
    elif overall is not None and overall not in ("verified", "partly_verified"):
        out.append(("water_saving_needs_evidence", {"overall": overall}))
    return out


def evidence(result: dict[str, Any]) -> dict[str, float | None]:
    """The measured figures a naming list quotes, from a `jieshui.verification/1` result: rainwater
    reused and river water used (m3, the year), litres of fresh water per car washed, and the data
    coverage (mean share of valid days over the community's meters)."""
    figures: dict[str, float] = result.get("figures", {})

    def total(suffix: str) -> float | None:
        found = [v for k, v in figures.items() if k.endswith(suffix)]
        return round(sum(found), 3) if found else None

    per_car = [v for k, v in figures.items() if k.endswith(".l_per_wash")]
    meters = result.get("meters", [])
    shares = [float(m["valid_day_share"]) for m in meters if "valid_day_share" in m]
    return {
        "reuse_m3": total(".reuse_m3"),
        "river_water_m3": total(".river_water_m3"),
        "l_per_car": round(per_car[0], 3) if per_car else None,
        "coverage": round(sum(shares) / len(shares), 4) if shares else None,
    }
