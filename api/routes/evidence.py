"""Daily digests of the readings and their check (evidence.digest)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
