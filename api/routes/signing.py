"""Evaluators' signing keys and the signatures of verdicts and reports (evidence.signing)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
