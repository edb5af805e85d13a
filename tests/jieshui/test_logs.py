"""The one logging setup: JSON lines carry the level, logger, message and the device when given."""

from __future__ import annotations

import json
import logging

import pytest

from jieshui.logs import configure_logging


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", as_json=True)
    logging.getLogger("jieshui.collector").warning(
        "device silent", extra={"device": "xinjing-6/master-meter"}
    )
    logging.getLogger("httpx").info("HTTP Request: POST /write")  # quietened: below WARNING
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "jieshui.collector"
    assert entry["message"] == "device silent"
    assert entry["device"] == "xinjing-6/master-meter"
    assert entry["time"].endswith("Z")
    configure_logging("INFO", as_json=False)
