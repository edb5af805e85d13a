"""`jieshui evidence sign|verify|keys ...` (evidence.signing)."""

from __future__ import annotations

from typing import Any


def add_actions(actions: Any) -> None:
    """Add the signing actions to `jieshui evidence`."""
