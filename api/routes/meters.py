"""The meter registry: meters behind devices, replacement events (evidence.meters)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
