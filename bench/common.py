"""What every benchmark shares: the machine it ran on, the result record, and where results go.

A benchmark module `bench/bench_<name>.py` exposes `run(budget_s: float) -> Result` (it must finish
within about `budget_s` seconds, scaling its sizes down when the budget is small) and a `main()` that
parses its own options, runs, prints the result and records it with `record()`. `bench/run_all.py`
(`make bench`) runs them all within a total budget, writes `bench/results.json` and regenerates the
table in docs/benchmarks.md between its markers.

Every result compares our figure with a baseline measured in the same run on the same machine, and
states the target as a ratio; absolute figures are recorded for reference only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "bench" / "results.json"
PACKAGES = ("pymodbus", "paho-mqtt", "influxdb-client", "fastapi", "uvicorn", "numpy")


@dataclass
class Result:
    """One benchmark's outcome.

    `ratio` is `ours / baseline` when higher is better (throughput), or as the target defines it
    (`target_op` says how `ratio` compares to `target`: ">=" or "<="). `figures` holds every number
    measured (with units in their names), `notes` what a reader needs to interpret them (sizes, what
    was skipped and why).
    """

    name: str  # e.g. "ingest"
    title: str  # one line, en
    baseline_label: str
    baseline: float
    ours_label: str
    ours: float
    unit: str  # of baseline and ours, e.g. "lines/s"
    ratio: float
    target: float
    target_op: Literal[">=", "<="]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the benchmark

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.target_op == ">=" else self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and the versions of the libraries that set the baselines."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    servers: dict[str, str | None] = {}
    for binary, args in (("influxd", ["version"]), ("mosquitto", ["-h"])):
        try:
            out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10, check=False)
            servers[binary] = (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            servers[binary] = None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "servers": servers,
    }


def record(result: Result, path: Path = RESULTS) -> None:
    """Merge one result into the results file (other benchmarks' results are kept)."""
    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("results", {})[result.name] = result.as_dict()
    data["machine"] = machine()
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def figure(x: float) -> str:
    """A figure for people: thousands separated, three significant digits below 100."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def report(result: Result) -> None:
    """Print baseline, ours and the ratio (and the target) in one block."""
    verdict = "met" if result.met else "MISSED"
    print(f"{result.title}", file=sys.stderr)
    print(f"  baseline  {result.baseline_label}: {figure(result.baseline)} {result.unit}", file=sys.stderr)
    print(f"  ours      {result.ours_label}: {figure(result.ours)} {result.unit}", file=sys.stderr)
    target = f"target {result.target_op} {result.target:g}: {verdict}"
    print(f"  ratio     {result.ratio:.3f} ({target})", file=sys.stderr)
    print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))


def main(
    doc: str,
    default_budget_s: float,
    run: Callable[..., Result],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    arguments: Callable[[argparse.Namespace, argparse.ArgumentParser], dict[str, Any]] | None = None,
) -> None:
    """A benchmark's command line: `--budget-s` and its own `options`; `run(budget_s, **arguments)`
    (by default every option by its name), then print and record the result."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=default_budget_s)
    if options is not None:
        options(parser)
    args = parser.parse_args()
    given = arguments(args, parser) if arguments else {k: v for k, v in vars(args).items() if k != "budget_s"}
    result = run(args.budget_s, **given)
    report(result)
    record(result)
