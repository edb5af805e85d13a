"""Bad MQTT payloads of every MQTT profile, through the pure pipeline: each becomes a dead letter with
its exact reason and a message naming the key (and what was wrong with it); none raises.

tests/collector/malformed.py holds the first corpus (the car wash); the cases here add to it without
repeating it: `COVERED_BY_MALFORMED` names the (key, kind) pairs it already has, and they are left out.
Topic problems go through the collector's own routing (`Collector._on_message`), the one place that
maps a topic to a device.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.pipeline import DeadLetter, DeviceState, Limits, Reading, process_mqtt
from collector.service import Collector, CollectorConfig, _Batch
from collector.sources.mqtt import Incoming
from devices.profile import MqttField, Profile
from jieshui.inventory import load_site
from store.influx import InfluxConfig
from tests.collector.malformed import mqtt_cases
from tests.corpus.mqtt_profiles import NOW_MS, NOW_NS, device, encode, good_payload, mqtt_profiles

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class MqttCase:
    """One bad payload: which profile's device sends it, and the dead letter it must become."""

    id: str
    profile: Profile
    payload: bytes
    reason: str
    text: str  # the message contains it: the key, and what is wrong


#: malformed.py's cases as (key, kind): the generated cases skip these pairs for the car wash.
COVERED_BY_MALFORMED: dict[str, tuple[str, str]] = {
    "missing-ts": ("ts", "missing"),
    "missing-seq": ("seq", "missing"),
    "missing-event": ("event", "missing"),
    "missing-wash-count": ("wash_count", "missing"),
    "missing-fresh-total": ("fresh_total_l", "missing"),
    "missing-recycled-total": ("recycled_total_l", "missing"),
    "ts-string": ("ts", "text"),
    "ts-null": ("ts", "null"),
    "seq-string": ("seq", "text"),
    "seq-float": ("seq", "float"),
    "seq-bool": ("seq", "bool"),
    "event-unknown": ("event", "unknown"),
    "event-number": ("event", "int"),
    "nested-wrong": ("event", "object"),
    "wash-count-string": ("wash_count", "text"),
    "wash-count-float": ("wash_count", "float"),
    "wash-count-negative": ("wash_count", "below-min"),
    "class-unknown": ("vehicle_class", "unknown"),
    "class-upper": ("vehicle_class", "upper"),
    "class-number": ("vehicle_class", "int"),
    "water-string": ("water_l", "text"),
    "water-bool": ("water_l", "bool"),
    "water-list": ("water_l", "list"),
    "water-object": ("water_l", "object"),
    "water-negative": ("water_l", "below-min"),
    "water-huge": ("water_l", "above-max"),
    "recycled-huge": ("recycled_l", "above-max"),
    "recycled-negative": ("recycled_l", "below-min"),
    "fresh-total-negative": ("fresh_total_l", "below-min"),
    "fresh-total-string": ("fresh_total_l", "text"),
    "recycled-total-null": ("recycled_total_l", "null"),
    "nan": ("water_l", "nan"),
    "infinity": ("water_l", "infinity"),
    "minus-infinity": ("recycled_l", "-infinity"),
    "too-old": ("ts", "too-old"),
    "extra-key": ("(payload)", "extra-key"),
}

_TYPE_PHRASE = {
    "number": "Input should be a valid number",
    "integer": "Input should be a valid integer",
    "boolean": "Input should be a valid boolean",
    "string": "Input should be a valid string",
}
#: JSON tokens Python's json module reads as non-finite floats (a device's printf of a NaN).
_TOKENS = {"nan": "NaN", "infinity": "Infinity", "-infinity": "-Infinity", "1e400": "1e400"}
_PLACEHOLDER = 123456789.25


def _literal_phrase(values: list[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"Input should be {listed}"


def _num(f: MqttField, value: float) -> float | int:
    return round(value) if f.type == "integer" else value


def _type_phrase(f: MqttField) -> str:
    return _literal_phrase(f.values) if f.values else _TYPE_PHRASE[f.type]


def _field_cases(profile: Profile, good: dict[str, Any]) -> list[tuple[str, str, bytes, str, str]]:
    """(key, kind, payload, reason, text) for every way each payload key can be wrong."""
    assert profile.mqtt is not None
    out: list[tuple[str, str, bytes, str, str]] = []

    def put(key: str, kind: str, value: Any, reason: str, text: str) -> None:
        body = dict(good)
        if value is ...:
            del body[key]
        else:
            body[key] = value
        out.append((key, kind, encode(body), reason, text))

    def token(key: str, kind: str, reason: str, text: str) -> None:
        raw = json.dumps({**good, key: _PLACEHOLDER}).replace(str(_PLACEHOLDER), _TOKENS[kind])
        out.append((key, kind, raw.encode(), reason, text))

    for f in profile.mqtt.fields:
        key, wrong = f.key, f"{f.key}: {_type_phrase(f)}"
        if f.required:
            put(key, "missing", ..., "schema", f"{key}: Field required")
            put(key, "null", None, "schema", wrong)
        if f.type != "string" or f.values:
            put(key, "text", "1.5", "schema", wrong)
        if f.type != "boolean":
            put(key, "bool", True, "schema", wrong)
        put(key, "list", [good[key]], "schema", wrong)
        put(key, "object", {"value": good[key]}, "schema", wrong)
        if f.type in ("integer", "boolean", "string"):
            put(key, "float", 1.5, "schema", wrong)
        if f.type in ("boolean", "string"):
            put(key, "int", 1, "schema", wrong)
        if f.type == "boolean":
            put(key, "text-true", "true", "schema", wrong)
        if f.values:
            put(key, "unknown", "zzz", "schema", wrong)
            put(key, "upper", f.values[0].upper(), "schema", wrong)
        if f.type == "number":
            for kind in _TOKENS:
                token(key, kind, "schema", f"{key}: Input should be a finite number")
        if f.type == "integer":
            token(key, "nan", "schema", wrong)
        q = profile.quantity[f.quantity] if f.quantity else None
        if q is not None and f.type in ("number", "integer"):
            step = 1 if f.type == "integer" else 0.5  # an integer key must stay an integer
            low = None if q.min is None else q.min / f.scale
            high = None if q.max is None else q.max / f.scale
            if low is not None:
                put(
                    key,
                    "below-min",
                    _num(f, low - step),
                    "schema",
                    f"{key}: Input should be greater than or equal to {low:g}",
                )
            if high is not None:
                put(
                    key,
                    "above-max",
                    _num(f, high + step),
                    "schema",
                    f"{key}: Input should be less than or equal to {high:g}",
                )
            if f.type == "integer" and high is None:
                # no schema bound: the pipeline refuses what InfluxDB's 64-bit integers cannot hold
                put(key, "int64-overflow", 2**63, "range", f"{q.name} = {2**63} is outside the 64-bit range")
                put(
                    key, "huge-int", 10**400, "range", f"{q.name} = a 401-digit integer is outside the 64-bit"
                )
    return out


def _time_cases(profile: Profile, good: dict[str, Any]) -> list[tuple[str, str, bytes, str, str]]:
    """The device time: wrong types, impossible values, too old."""
    assert profile.mqtt is not None
    key, fmt = profile.mqtt.timestamp_key, profile.mqtt.timestamp_format
    if key is None:
        return []
    out: list[tuple[str, str, bytes, str, str]] = []
    eight_days_ago = NOW_MS - 8 * 86_400_000

    def put(kind: str, value: Any, reason: str, text: str) -> None:
        body = dict(good)
        if value is ...:
            del body[key]
        else:
            body[key] = value
        out.append((key, kind, encode(body), reason, text))

    put("missing", ..., "schema", f"{key}: Field required")
    too_old = "device time is 8.0 days old (limit 7)"
    if fmt == "iso8601":
        wrong = f"{key}: Input should be a valid string"
        put("null", None, "schema", wrong)
        put("number", NOW_MS, "schema", wrong)
        put("text", "yesterday", "schema", f"{key}: 'yesterday' is not ISO 8601")
        put("feb-30", "2026-02-30T10:00:00", "schema", f"{key}: '2026-02-30T10:00:00' is not ISO 8601")
        put("hour-25", "2026-11-18T25:00:00", "schema", f"{key}: '2026-11-18T25:00:00' is not ISO 8601")
        put("epoch-as-text", str(NOW_MS), "schema", f"{key}: '{NOW_MS}' is not ISO 8601")
        old = dt.datetime.fromtimestamp(eight_days_ago / 1000, dt.UTC).isoformat()
        put("too-old", old, "too_old", too_old)
        put("year-one", "0001-01-01T00:00:00+01:00", "too_old", "days old (limit 7)")
        return out
    wrong = f"{key}: Input should be a valid number"
    scale = 1 if fmt == "epoch_ms" else 1000
    put("null", None, "schema", wrong)
    put("text", "yesterday", "schema", wrong)
    put("bool", True, "schema", wrong)
    put("list", [good[key]], "schema", wrong)
    put("iso", "2026-11-18T10:00:00Z", "schema", wrong)
    raw = json.dumps({**good, key: _PLACEHOLDER}).replace(str(_PLACEHOLDER), "NaN")
    out.append((key, "nan", raw.encode(), "schema", f"{key}: Input should be a finite number"))
    put("too-old", eight_days_ago / scale, "too_old", too_old)
    put("negative", -1, "too_old", "days old (limit 7)")
    if fmt == "epoch_s":  # seconds x 10**9 overflow a float: no time at all
        put("1e300", 1e300, "schema", f"{key}: 1e+300 is not a time a device can have")
        put("minus-1e300", -1e300, "schema", f"{key}: -1e+300 is not a time a device can have")
    else:
        put("minus-1e300", -1e300, "too_old", "device time is 1.16e+292 days old (limit 7)")
    return out


def _profile_cases(profile: Profile) -> list[MqttCase]:
    good = good_payload(profile)
    covered = set(COVERED_BY_MALFORMED.values()) if profile.name == "wx-cw01" else set()
    cases = [
        MqttCase(f"{profile.name}/{key}/{kind}", profile, payload, reason, text)
        for key, kind, payload, reason, text in _time_cases(profile, good) + _field_cases(profile, good)
        if (key, kind) not in covered
    ]
    if ("(payload)", "extra-key") not in covered:
        cases.append(
            MqttCase(
                f"{profile.name}/(payload)/extra-key",
                profile,
                encode({**good, "zz_extra": 1}),
                "schema",
                "zz_extra: Extra inputs are not permitted",
            )
        )
    return cases


def _payload_cases() -> list[MqttCase]:
    """Problems of the payload as a whole (JSON, Unicode), the same for every profile: the car wash's."""
    wash = next(p for p in mqtt_profiles() if p.name == "wx-cw01")
    good = good_payload(wash)
    text = json.dumps(good)
    return [
        MqttCase(
            "payload/nested-too-deeply",
            wash,
            b"[" * 100_000 + b"]" * 100_000,
            "json",
            "payload is not JSON we accept: nested too deeply",
        ),
        MqttCase(
            "payload/nested-object-too-deeply",
            wash,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            "json",
            "payload is not JSON we accept: nested too deeply",
        ),
        MqttCase(
            "payload/integer-of-5000-digits",
            wash,
            text.replace('"seq": 7', '"seq": ' + "7" * 5000).encode(),
            "json",
            "payload is not JSON we accept: a number exceeds the limit (4300 digits)",
        ),
        MqttCase(
            "payload/lone-surrogate-key",
            wash,
            text.replace('"seq"', '"\\ud800"').encode(),
            "schema",
            "(top): a key or a text holds an unpaired surrogate (\\ud800-\\udfff), not valid Unicode",
        ),
        MqttCase(
            "payload/empty-key",
            wash,
            encode({**good, "": 1}),
            "schema",
            '"": Extra inputs are not permitted',
        ),
        MqttCase(
            "payload/js-comment",
            wash,
            text.replace('"seq": 7', '"seq": 7 /* retry */').encode(),
            "json",
            "payload is not JSON: Expecting ',' delimiter: line 1 column 32 (char 31)",
        ),
        MqttCase(
            "payload/nul-byte",
            wash,
            text.replace('"seq": 7', '"seq": 7\x00').encode(),
            "json",
            "payload is not JSON: Expecting ',' delimiter: line 1 column 31 (char 30)",
        ),
        MqttCase(
            "payload/invalid-utf8-in-string",
            wash,
            text.replace('"wash"', '"w\xe4sh"').encode("latin-1"),
            "json",
            "payload is not JSON: not UTF-8 text ('utf-8' codec can't decode byte 0xe4",
        ),
        MqttCase(
            "payload/two-documents",
            wash,
            (text + "\n" + text).encode(),
            "json",
            "payload is not JSON: Extra data: line 2 column 1",
        ),
        MqttCase(
            "payload/hex-number",
            wash,
            text.replace('"seq": 7', '"seq": 0x07').encode(),
            "json",
            "payload is not JSON: Expecting ',' delimiter",
        ),
        MqttCase(
            "payload/leading-zero",
            wash,
            text.replace('"seq": 7', '"seq": 007').encode(),
            "json",
            "payload is not JSON: Expecting ',' delimiter",
        ),
        MqttCase(
            "payload/key-with-newline",
            wash,
            encode({**good, "a\nb": 1}),
            "schema",
            "a\nb: Extra inputs are not permitted",
        ),
    ]


def mqtt_payload_cases() -> list[MqttCase]:
    """Every MQTT payload case of this module (malformed.py's are not repeated)."""
    cases = _payload_cases()
    for profile in mqtt_profiles():
        cases.extend(_profile_cases(profile))
    return cases


CASES = mqtt_payload_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_payload_becomes_a_dead_letter_with_its_reason_and_key(case: MqttCase) -> None:
    ref = device(case.profile)
    result, state = process_mqtt(ref, DeviceState(), case.payload, NOW_NS, Limits(), topic="t")
    assert isinstance(result, DeadLetter), case.id
    assert (result.reason, case.text in result.message) == (case.reason, True), result.message
    assert result.device == ref
    assert state == DeviceState()  # a refused message changes nothing
    line = result.point("c1").to_line()  # and it can be written
    assert line.startswith(f"dead_letter,collector=c1,community=xinjing-6,device={ref.device},")


@pytest.mark.parametrize("profile", mqtt_profiles(), ids=lambda p: p.ref)
def test_the_good_payload_of_each_profile_is_a_reading(profile: Profile) -> None:
    result, _ = process_mqtt(device(profile), DeviceState(), encode(good_payload(profile)), NOW_NS, Limits())
    assert isinstance(result, Reading)
    assert result.values  # the corpus breaks a payload that is otherwise accepted


def test_the_malformed_pairs_named_here_are_malformed_cases() -> None:
    assert set(COVERED_BY_MALFORMED) <= {c[0] for c in mqtt_cases(NOW_MS)}


def test_no_case_repeats_a_malformed_payload() -> None:
    malformed = {payload for _, payload, _, _ in mqtt_cases(NOW_MS)}
    assert [c.id for c in CASES if c.profile.name == "wx-cw01" and c.payload in malformed] == []


def test_an_iso_time_without_offset_is_read_on_the_profiles_clock() -> None:
    """A device on Beijing time (clock: local) that sends 18:00 means 10:00 UTC, on any machine."""
    profile = next(p for p in mqtt_profiles() if p.name == "test-meter-iso")
    body = encode({"time": "2026-11-18T18:00:00", "volume": 1.0})
    now = int(dt.datetime(2026, 11, 18, 10, 0, 30, tzinfo=dt.UTC).timestamp()) * 10**9
    result, _ = process_mqtt(device(profile), DeviceState(), body, now, Limits())
    assert isinstance(result, Reading)
    assert result.time_ns == int(dt.datetime(2026, 11, 18, 10, tzinfo=dt.UTC).timestamp()) * 10**9


def test_an_optional_sequence_number_may_be_left_out() -> None:
    profile = next(p for p in mqtt_profiles() if p.name == "test-tank-s")
    body = dict(good_payload(profile))
    del body["n"]
    result, state = process_mqtt(device(profile), DeviceState(), encode(body), NOW_NS, Limits())
    assert isinstance(result, Reading)
    assert list(state.seen) == [f"t{NOW_NS}"]  # de-duplicated on its device time instead


# --- topics ---------------------------------------------------------------------------------------

#: (case id, topic): none of them is a device's telemetry topic in examples/community.yaml.
TOPIC_CASES: list[tuple[str, str]] = [
    ("unknown-device", "jieshui/changning/xinjing-6/car-wash-9/telemetry"),
    ("unknown-community", "jieshui/changning/xinjing-7/car-wash-1/telemetry"),
    ("wrong-district", "jieshui/xuhui/xinjing-6/car-wash-1/telemetry"),
    ("modbus-device", "jieshui/changning/xinjing-6/rw-controller/telemetry"),
    ("status-not-telemetry", "jieshui/changning/xinjing-6/car-wash-1/status"),
    ("too-deep", "jieshui/changning/xinjing-6/car-wash-1/telemetry/extra"),
    ("too-shallow", "jieshui/xinjing-6/car-wash-1/telemetry"),
    ("upper-case", "JIESHUI/changning/xinjing-6/car-wash-1/telemetry"),
    ("trailing-slash", "jieshui/changning/xinjing-6/car-wash-1/telemetry/"),
    ("empty-level", "jieshui/changning//car-wash-1/telemetry"),
]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Collector:
    """A collector for examples/community.yaml, not running: its message routing is what is tested."""
    config = CollectorConfig(collector_id="c1", buffer_path=tmp_path_factory.mktemp("c") / "buffer.sqlite3")
    influx = InfluxConfig(url="http://127.0.0.1:9")  # never contacted: nothing is drained
    return Collector(load_site(ROOT / "examples" / "community.yaml"), config, influx, broker=None)


@pytest.mark.parametrize(("case", "topic"), TOPIC_CASES, ids=[c[0] for c in TOPIC_CASES])
def test_a_message_on_a_topic_no_device_publishes_on_is_a_dead_letter(
    collector: Collector, case: str, topic: str
) -> None:
    batch = _Batch()
    payload = encode(good_payload(next(p for p in mqtt_profiles() if p.name == "wx-cw01")))
    collector._on_message(Incoming(topic, payload, NOW_NS, mid=1, qos=1, redelivered=False), batch)
    assert dict(batch.counts) == {"dead_letter:unknown_topic": 1}, case
    assert batch.acks == [(1, 1)]  # acknowledged: a message no device sends is never redelivered
    [line] = batch.lines
    assert line.startswith("dead_letter,collector=c1,reason=unknown_topic ")  # no device tags
    assert f'message="no device publishes on {topic}"' in line
    assert f'topic="{topic}"' in line


def test_the_telemetry_topic_of_the_car_wash_is_routed_to_it(collector: Collector) -> None:
    batch = _Batch()
    payload = encode(good_payload(next(p for p in mqtt_profiles() if p.name == "wx-cw01")))
    topic = "jieshui/changning/xinjing-6/car-wash-1/telemetry"
    collector._on_message(Incoming(topic, payload, NOW_NS, mid=2, qos=1, redelivered=False), batch)
    assert dict(batch.counts) == {"accepted_mqtt": 1}
