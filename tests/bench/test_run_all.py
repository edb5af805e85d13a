"""`make bench`'s bookkeeping: a result's verdict against its target, the results file merging results,
and the table it writes between the markers of docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import Result, record
from bench.run_all import BEGIN, BENCHMARKS, END, table, write_docs


def _result(name: str, ratio: float, op: str = ">=") -> Result:
    return Result(name=name, title=f"{name} title", baseline_label="base", baseline=100.0, ours_label="ours",
                  ours=ratio * 100, unit="x/s", ratio=ratio, target=0.5, target_op=op)  # type: ignore[arg-type]  # fmt: skip


def test_met_follows_the_target_direction() -> None:
    assert _result("a", 0.5).met
    assert not _result("a", 0.49).met
    assert _result("a", 0.1, "<=").met
    assert not _result("a", 0.6, "<=").met


def test_record_merges_and_the_table_lists_in_benchmark_order(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    record(_result("api", 0.9), results)
    record(_result("ingest", 0.3), results)
    record(_result("api", 0.95), results)  # replaces the earlier api result
    data = json.loads(results.read_text())
    assert set(data["results"]) == {"api", "ingest"}
    assert data["results"]["api"]["ratio"] == 0.95
    assert data["machine"]["cores"] >= 1
    rows = [line for line in table(data).splitlines() if line.startswith("| ") and "title" in line]
    assert [r.split(" title")[0] for r in rows] == ["| ingest", "| api"]  # ingest comes first in BENCHMARKS
    assert rows[0].endswith("| **no** |")
    assert rows[1].endswith("| yes |")


def test_docs_table_is_replaced_between_the_markers(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# B\n\nintro\n\n{BEGIN}\nold table\n{END}\n\n## more\n", encoding="utf-8")
    write_docs({"results": {"api": _result("api", 0.9).as_dict()}, "machine": {}}, docs)
    text = docs.read_text(encoding="utf-8")
    assert "old table" not in text
    assert text.startswith("# B\n\nintro\n\n")
    assert text.endswith(f"{END}\n\n## more\n")
    assert "| api title |" in text
    docs.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        write_docs({}, docs)


def test_every_benchmark_module_exists_with_run_and_a_budget_within_ten_minutes() -> None:
    import importlib

    assert sum(budget for _, _, budget in BENCHMARKS) <= 560
    for _, module, _ in BENCHMARKS:
        mod = importlib.import_module(module)
        assert callable(mod.run), module
        assert callable(mod.main), module
