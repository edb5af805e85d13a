"""The `jieshui` command line: help lists every subcommand, `check` prints and exits as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jieshui.cli import build_parser, main

ROOT = Path(__file__).parents[2]


def test_help_lists_each_subcommand_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert subcommands is not None
    lines = out.splitlines()
    for name in subcommands:
        # argparse puts the description of a long name (`applications`) on the next line
        i = next(
            i for i, line in enumerate(lines) if line.strip() == name or line.strip().startswith(name + " ")
        )
        described = lines[i].strip()[len(name) :].strip() or lines[i + 1].strip()
        assert len(described) > 20, f"{name} has no one-line description"


def test_check_valid_inventory_prints_summary_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    site = ROOT / "examples" / "district.yaml"
    assert main(["check", "--site", str(site)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{site}: ok: 1 district(s), 8 communities, 22 facilities, 30 devices, 22 claims"
    assert "\n" not in out


def test_check_bad_inventory_exits_2_with_one_line_per_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "examples" / "community.yaml").read_text(encoding="utf-8")
    bad.write_text(
        text.replace("households: 1460", "households: 0").replace('"200335"', '"2003"'), encoding="utf-8"
    )
    # As a separate process, the way operators and scripts call it.
    result = subprocess.run(
        [sys.executable, "-m", "jieshui.cli", "check", "--site", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{bad}:18: districts.0.communities.0.postcode: '2003' does not match the pattern ^\\d{{6}}$",
        f"{bad}:20: districts.0.communities.0.households: must be > 0",
    ]
    assert result.stdout == ""


def test_unknown_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
