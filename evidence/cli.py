"""`jieshui evidence ...`: the evidence commands (docs/evidence.md)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    """Add `evidence` and its actions to the top-level subparsers."""
    evidence = sub.add_parser("evidence", help="digests, checks, signatures (docs/evidence.md)")
    actions = evidence.add_subparsers(dest="action", required=True)
    from evidence.signing_cli import add_actions as add_signing_actions

    add_signing_actions(actions)
