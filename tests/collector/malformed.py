"""A corpus of malformed inputs with the dead-letter reason and message each must produce.

Shared by the pure pipeline tests and the integration test that publishes them to a real broker.
"""

from __future__ import annotations

import json
from typing import Any

# A valid wx-cw01 wash message (its ts is set to "now" by `mqtt_cases`); each case breaks it in one way.
GOOD: dict[str, Any] = {
    "ts": 0,
    "seq": 7,
    "event": "wash",
    "wash_count": 12,
    "vehicle_class": "sedan",
    "water_l": 1.2,
    "recycled_l": 0.5,
    "fresh_total_l": 15.0,
    "recycled_total_l": 6.0,
}


def mqtt_cases(now_ms: int) -> list[tuple[str, bytes, str, str]]:
    """(case id, payload, dead-letter reason, text the message must contain) for a receive time now."""
    good = {**GOOD, "ts": now_ms}

    def _with(**changes: Any) -> bytes:
        return _edit(good, changes)

    return _cases(good, _with)


def _edit(good: dict[str, Any], changes: dict[str, Any]) -> bytes:
    body = dict(good)
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


def _cases(GOOD: dict[str, Any], _with: Any) -> list[tuple[str, bytes, str, str]]:
    return [
        ("empty", b"", "json", "payload is not JSON"),
        ("whitespace", b"   ", "json", "payload is not JSON"),
        ("truncated", json.dumps(GOOD).encode()[:40], "json", "payload is not JSON"),
        ("binary", b"\x00\xff\xfe", "json", "payload is not JSON"),
        ("latin1", '{"ts": "caf\xe9"}'.encode("latin-1"), "json", "payload is not JSON"),
        ("trailing-garbage", json.dumps(GOOD).encode() + b"}", "json", "payload is not JSON"),
        ("single-quotes", b"{'ts': 1}", "json", "payload is not JSON"),
        ("array", b"[1, 2, 3]", "json", "payload is a JSON list, not an object"),
        ("string", b'"wash"', "json", "payload is a JSON str, not an object"),
        ("number", b"42", "json", "payload is a JSON int, not an object"),
        ("null", b"null", "json", "payload is a JSON NoneType, not an object"),
        ("true", b"true", "json", "payload is a JSON bool, not an object"),
        ("missing-ts", _with(ts=...), "schema", "ts: Field required"),
        ("missing-seq", _with(seq=...), "schema", "seq: Field required"),
        ("missing-event", _with(event=...), "schema", "event: Field required"),
        ("missing-wash-count", _with(wash_count=...), "schema", "wash_count: Field required"),
        ("missing-fresh-total", _with(fresh_total_l=...), "schema", "fresh_total_l: Field required"),
        ("missing-recycled-total", _with(recycled_total_l=...), "schema", "recycled_total_l: Field required"),
        ("ts-string", _with(ts="yesterday"), "schema", "ts: Input should be a valid"),
        ("ts-null", _with(ts=None), "schema", "ts: Input should be a valid"),
        ("seq-string", _with(seq="7"), "schema", "seq: Input should be a valid integer"),
        ("seq-float", _with(seq=7.5), "schema", "seq: Input should be a valid integer"),
        ("seq-bool", _with(seq=True), "schema", "seq: Input should be a valid integer"),
        ("event-unknown", _with(event="polish"), "schema", "event: Input should be 'wash' or 'status'"),
        ("event-number", _with(event=1), "schema", "event: Input should be 'wash' or 'status'"),
        (
            "wash-count-string",
            _with(wash_count="12"),
            "schema",
            "wash_count: Input should be a valid integer",
        ),
        ("wash-count-float", _with(wash_count=12.5), "schema", "wash_count: Input should be a valid integer"),
        (
            "wash-count-negative",
            _with(wash_count=-1),
            "schema",
            "wash_count: Input should be greater than or equal to 0",
        ),
        (
            "class-unknown",
            _with(vehicle_class="tank"),
            "schema",
            "vehicle_class: Input should be 'sedan', 'small', 'medium' or 'large'",
        ),
        ("class-upper", _with(vehicle_class="SEDAN"), "schema", "vehicle_class: Input should be 'sedan'"),
        ("class-number", _with(vehicle_class=3), "schema", "vehicle_class: Input should be 'sedan'"),
        ("water-string", _with(water_l="1.2"), "schema", "water_l: Input should be a valid"),
        ("water-bool", _with(water_l=False), "schema", "water_l: Input should be a valid"),
        ("water-list", _with(water_l=[1.2]), "schema", "water_l: Input should be a valid"),
        ("water-object", _with(water_l={"l": 1.2}), "schema", "water_l: Input should be a valid"),
        (
            "water-negative",
            _with(water_l=-0.5),
            "schema",
            "water_l: Input should be greater than or equal to 0",
        ),
        ("water-huge", _with(water_l=5000), "schema", "water_l: Input should be less than or equal to 200"),
        (
            "recycled-huge",
            _with(recycled_l=201),
            "schema",
            "recycled_l: Input should be less than or equal to 200",
        ),
        (
            "recycled-negative",
            _with(recycled_l=-1),
            "schema",
            "recycled_l: Input should be greater than or equal to 0",
        ),
        (
            "fresh-total-negative",
            _with(fresh_total_l=-10),
            "schema",
            "fresh_total_l: Input should be greater than or equal to 0",
        ),
        ("fresh-total-string", _with(fresh_total_l="15"), "schema", "fresh_total_l: Input should be a valid"),
        (
            "recycled-total-null",
            _with(recycled_total_l=None),
            "schema",
            "recycled_total_l: Input should be a valid",
        ),
        ("extra-key", _with(temperature_c=21), "schema", "temperature_c: Extra inputs are not permitted"),
        ("two-extra-keys", _with(a=1, b=2), "schema", "a: Extra inputs are not permitted; b: Extra inputs"),
        (
            "nan",
            json.dumps(GOOD).replace("1.2", "NaN").encode(),
            "schema",
            "water_l: Input should be a finite number",
        ),
        (
            "infinity",
            json.dumps(GOOD).replace("1.2", "Infinity").encode(),
            "schema",
            "water_l: Input should be",
        ),
        (
            "minus-infinity",
            json.dumps(GOOD).replace("0.5", "-Infinity").encode(),
            "schema",
            "recycled_l: Input should be",
        ),
        ("too-old", _with(ts=1_000_000_000_000), "too_old", "days old (limit 7)"),
        ("epoch-zero", _with(ts=0), "too_old", "days old (limit 7)"),
        (
            "many-errors",
            _with(seq="x", event="y", wash_count=-5),
            "schema",
            "seq: Input should be a valid integer; event",
        ),
        ("all-missing", b"{}", "schema", "ts: Field required; seq: Field required"),
        (
            "nested-wrong",
            _with(event={"kind": "wash"}),
            "schema",
            "event: Input should be 'wash' or 'status'",
        ),
    ]
