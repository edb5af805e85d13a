"""The `jieshui` command: one entry point, one subcommand per job (check, demo, ...).

Options follow one rule (ARCHITECTURE.md): a flag wins over its `JIESHUI_*` environment variable,
which wins over the default. Subcommands import their modules lazily so `jieshui --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jieshui import __version__
from jieshui.errors import InventoryError, JieshuiError

#: Exit status for invalid input (an inventory, a configuration): the caller must fix the input.
EXIT_INVALID = 2


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"JIESHUI_{name}", default)


def _cmd_check(args: argparse.Namespace) -> int:
    from jieshui.inventory import load_site

    try:
        site = load_site(args.site)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.site}: ok: {site.summary()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from jieshui.demo import run_demo

    return run_demo(
        site_path=Path(args.site),
        var_dir=Path(args.var),
        influx_port=args.influx_port,
        mqtt_port=args.mqtt_port,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `jieshui` command."""
    parser = argparse.ArgumentParser(
        prog="jieshui",
        description="Jieshui (节水): telemetry and verification for water-saving residential communities.",
    )
    parser.add_argument("--version", action="version", version=f"jieshui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="validate a site inventory file and print a summary or every error",
        description="Validate a site inventory: exit 0 with a summary, or exit 2 with one "
        "`FILE:LINE: dotted.path: message` line per error.",
    )
    check.add_argument("--site", required=True, default=_env("SITE"), help="inventory YAML file")
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser(
        "demo",
        help="run the whole system on this machine (own influxd and mosquitto under var/)",
        description="Start influxd and mosquitto from the system's binaries with data under --var, "
        "bootstrap the database, write and read back a reading, print where everything is, and stop "
        "everything cleanly on Ctrl-C.",
    )
    demo.add_argument("--site", default=_env("SITE", "examples/district.yaml"), help="inventory file")
    demo.add_argument("--var", default=_env("VAR_DIR", "var"), help="data and log directory")
    demo.add_argument(
        "--influx-port", type=int, default=_env("DEMO_INFLUX_PORT"), help="influxd port (default: a free one)"
    )
    demo.add_argument(
        "--mqtt-port", type=int, default=_env("DEMO_MQTT_PORT"), help="mosquitto port (default: a free one)"
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except JieshuiError as exc:
        print(f"jieshui {args.command}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
