"""`make bench`: every benchmark within a total budget, then bench/results.json and the table in
docs/benchmarks.md.

Each benchmark runs in its own process (`python -m bench.bench_<name> --budget-s B`), so one that
fails or hangs costs its own budget only: it is killed at 1.5 x its budget and reported as failed.
The budgets add up to under ten minutes; `--only NAME` runs some, `--scale X` multiplies the budgets
(0.3 for a quick look). The table is rebuilt from results.json after the runs, so a benchmark run on its
own (`python -m bench.bench_mqtt`) shows up there too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, figure

#: (name, module, budget in seconds): 540 s in all, plus start-up of each process.
BENCHMARKS: tuple[tuple[str, str, float], ...] = (
    ("ingest", "bench.bench_ingest", 45),
    ("mqtt", "bench.bench_mqtt", 75),
    ("scaleout", "bench.bench_scaleout", 60),
    ("modbus", "bench.bench_modbus", 90),
    ("verification", "bench.bench_verification", 80),
    ("api", "bench.bench_api", 55),
    ("latency", "bench.bench_latency", 45),
    ("memory", "bench.bench_memory", 90),
)
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"


def table(data: dict[str, Any]) -> str:
    """The summary table of results.json, as Markdown."""
    m = data.get("machine", {})
    lines = [
        f"Latest `make bench`: {m.get('cores')} cores, {m.get('cpu')}, Python {m.get('python')}; "
        f"{(m.get('servers') or {}).get('influxd')}; {(m.get('servers') or {}).get('mosquitto')}. "
        "Figures from one run on a shared machine: compare the ratios, not the absolute numbers.",
        "",
        "| benchmark | baseline | ours | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = [name for name, _, _ in BENCHMARKS]
    results = data.get("results", {})
    for name in sorted(results, key=lambda n: order.index(n) if n in order else len(order)):
        r = results[name]
        unit = r["unit"]
        lines.append(
            f"| {r['title']} | {r['baseline_label']}: {figure(r['baseline'])} {unit} | {r['ours_label']}: "
            f"{figure(r['ours'])} {unit} | {r['ratio']:.3g} | {r['target_op']} {r['target']:g} | "
            f"{'yes' if r['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def write_docs(data: dict[str, Any], path: Path = DOCS) -> None:
    """Replace the text between the markers of docs/benchmarks.md with the table."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: the markers {BEGIN} and {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table(data)}\n{END}{tail}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=[n for n, _, _ in BENCHMARKS])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every budget")
    args = parser.parse_args()
    failed = []
    started = time.monotonic()
    for name, module, budget in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        budget_s = budget * args.scale
        print(f"== {name} (budget {budget_s:.0f} s)", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(
                [sys.executable, "-m", module, "--budget-s", f"{budget_s:g}"],
                cwd=ROOT, timeout=budget_s * 1.5 + 30, stdout=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                failed.append(f"{name}: exit {done.returncode}")
        except subprocess.TimeoutExpired:
            failed.append(f"{name}: killed after {budget_s * 1.5 + 30:.0f} s")
    data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    write_docs(data)
    print(table(data), file=sys.stderr)
    print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
