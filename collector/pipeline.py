"""The collector's pipeline: pure functions from what a device sent to the points InfluxDB stores.

No I/O here. Modbus register blocks and MQTT payloads come in; out come either a `Reading` (decoded,
in the profile's units, validated, with consumption deltas from its totalizers) or a `DeadLetter`
naming the device, the reason and the raw input. The state these functions need between readings
(last totalizer values, message ids already seen) is a plain value passed in and returned, so the
durable buffer can store it in the same transaction as the points it produced: a crash can then
never count a volume twice or lose it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from pydantic import ValidationError

from devices.payload import model_for, payload_to_quantities
from devices.profile import Profile
from devices.registers import ROLLOVER_BAND, codecs_for, rollover_values
from evidence.meters import Swap, interval_use, swaps_between
from jieshui.inventory import SHANGHAI
from store.lineprotocol import FieldValue, Point, series_key

NS = 10**9
#: Raw input kept in a dead letter (characters); enough to see what was wrong, never a whole flood.
RAW_LIMIT = 512
#: An InfluxDB integer field is 64-bit signed.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class DeviceRef:
    """A device as the collector knows it: its place in the inventory and its profile."""

    district: str
    community: str
    device: str
    profile: Profile
    collector: str
    #: Recorded meter replacements (the inventory's, evidence.meters): the deltas across a swap come
    #: from its readings instead of the reset guess.
    replacements: tuple[Swap, ...] = ()

    @property
    def key(self) -> str:
        """`community/device`, unique in a site."""
        return f"{self.community}/{self.device}"

    @cached_property
    def series_key(self) -> str:
        """`measurement,tags` of the device's readings, encoded once (it is the same for every reading)."""
        return series_key(str(self.profile.kind), self.tags())

    def tags(self) -> dict[str, str]:
        """The tags of every point of this device (docs/schema.md)."""
        kind = str(self.profile.kind)
        return {
            "district": self.district,
            "community": self.community,
            "device": self.device,
            "kind": kind,
            "collector": self.collector,
            "profile": self.profile.ref,
        }


@dataclass(frozen=True)
class Limits:
    """Bounds on timestamps: device clocks and delivery delays the pipeline accepts."""

    max_future_s: float = 120.0  # a device clock further ahead is skewed: its reading is re-stamped
    max_past_s: float = 7 * 86400.0  # older readings (a very late delivery) are dead-lettered


@dataclass(frozen=True)
class DeadLetter:
    """An input the pipeline refused: who sent it, why, and what it was."""

    device: DeviceRef | None
    time_ns: int
    reason: str  # a short code: json, schema, range, not_finite, too_old, decode, modbus_exception, ...
    message: str
    raw: str
    topic: str = ""

    def point(self, collector: str) -> Point:
        """The `dead_letter` point recording this refusal."""
        tags = {"collector": collector, "reason": self.reason}
        if self.device is not None:
            tags.update(
                district=self.device.district, community=self.device.community, device=self.device.device
            )
        fields: dict[str, FieldValue] = {"message": self.message[:1000], "raw": self.raw[:RAW_LIMIT]}
        if self.topic:
            fields["topic"] = self.topic[:256]
        return Point("dead_letter", tags, fields, self.time_ns)


class SeenWindow(Sequence[str]):
    """The newest message ids of a device, oldest first, at most a given number: an immutable value
    whose successor shares its storage. `added` appends in place when this window is the newest view
    of its list (the usual case: O(1)) and copies only when another window already grew from it, so an
    older state (the one kept when a batch could not be stored) never sees ids added after it."""

    __slots__ = ("_end", "_ids", "_start")

    def __init__(self, ids: Iterable[str] = (), start: int = 0, end: int | None = None) -> None:
        self._ids = ids if isinstance(ids, list) else list(ids)
        self._start = start
        self._end = len(self._ids) if end is None else end

    def added(self, message_id: str, limit: int) -> tuple[SeenWindow, list[str]]:
        """The window with `message_id` appended, and the ids that fell out of it."""
        ids, start, end = self._ids, self._start, self._end
        if end != len(ids):  # another window already grew from this one
            ids, start, end = ids[start:end], 0, end - start
        ids.append(message_id)
        end += 1
        first = max(start, end - limit)
        dropped = ids[start:first]
        if first > SEEN_SLACK:  # compact now and then: a copy every SEEN_SLACK ids, few dead ids kept
            ids, end, first = ids[first:end], end - first, 0
        return SeenWindow(ids, first, end), dropped

    def __len__(self) -> int:
        return self._end - self._start

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        view = self._ids[self._start : self._end]
        return view[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids[self._start : self._end])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SeenWindow | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SeenWindow({list(self)!r})"


@dataclass
class DeviceState:
    """What the pipeline remembers of a device: last totalizer values and the ids of recent messages."""

    last: dict[str, float] = field(default_factory=dict)  # quantity -> last accepted cumulative value
    last_time_ns: int = 0
    seen: SeenWindow = field(default_factory=SeenWindow)  # recent message ids, oldest first
    resets: int = 0
    seen_total: int = 0  # ids ever remembered: the newest id of `seen` is number `seen_total`
    # `seen` as a set, handed from each state to the next by `remember` (rebuilt when asked again):
    # the membership test of every message is O(1) instead of a scan of the window
    _index: set[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seen, SeenWindow):
            self.seen = SeenWindow(self.seen)
        self.seen_total = max(self.seen_total, len(self.seen))

    def take_index(self) -> set[str]:
        """The set of `seen`, moved out of this state (which builds it again if asked again)."""
        index = self._index if self._index is not None else set(self.seen)
        self._index = None
        return index

    def to_json(self) -> str:
        """Serialised for the buffer's state table, without the ids (the buffer keeps them in rows of
        their own: rewriting a window of 2,048 ids per device and batch dominated MQTT ingest)."""
        return json.dumps(
            {"last": self.last, "t": self.last_time_ns, "resets": self.resets, "seen_total": self.seen_total}
        )

    @classmethod
    def from_json(cls, text: str, seen: list[str] | None = None) -> DeviceState:
        """The inverse of `to_json`, with the ids from the buffer (or, from a buffer written before
        they had rows of their own, from the JSON)."""
        raw = json.loads(text)
        ids = seen if seen is not None else list(raw.get("seen", []))
        total = int(raw.get("seen_total", len(ids)))
        return cls(dict(raw["last"]), int(raw["t"]), SeenWindow(ids), int(raw.get("resets", 0)), total)


#: How many message ids per device are remembered for de-duplication. Repeats come from the broker
#: (messages delivered but not yet acknowledged when the collector stopped: at most the receive
#: maximum, 1,000, in all) and from a device resending one it thinks lost (a few back): 1,024 covers
#: both. A bigger window costs memory per device (bench/bench_memory.py: 1,000 devices).
SEEN_WINDOW = 1024
#: Ids that left a window but stay in its list until the next compaction (bounds the sawtooth of a
#: device's memory; a compaction copies the window once per SEEN_SLACK ids).
SEEN_SLACK = 32


@dataclass(frozen=True)
class MeterEvent:
    """Something that happened to a totalizer: a rollover, or a reset (meter replaced or cleared)."""

    quantity: str
    kind: str  # "rollover" | "reset" | "replacement" (a recorded swap: not a reset)
    previous: float
    current: float


@dataclass(frozen=True)
class Reading:
    """A decoded, validated reading and the points it becomes."""

    device: DeviceRef
    time_ns: int
    values: dict[str, FieldValue]
    deltas: dict[str, float]
    raw_sha256: str
    events: tuple[MeterEvent, ...] = ()
    clock_skew_s: float | None = None
    late: bool = False

    def points(self) -> list[Point]:
        """The device's point (values, consumption deltas, provenance), plus one per meter event."""
        fields: dict[str, FieldValue] = dict(self.values)
        for quantity, delta in self.deltas.items():
            fields[delta_field(quantity)] = delta
        fields["raw_sha256"] = self.raw_sha256
        if self.clock_skew_s is not None:
            fields["clock_skew_s"] = self.clock_skew_s
        if self.late:
            fields["late"] = True
        tags = self.device.tags()
        out = [Point(str(self.device.profile.kind), tags, fields, self.time_ns, _key=self.device.series_key)]
        for event in self.events:
            out.append(
                Point(
                    "meter_event",
                    {**tags, "quantity": event.quantity, "event": event.kind},
                    {"previous": event.previous, "current": event.current},
                    self.time_ns,
                )
            )
        return out


def delta_field(quantity: str) -> str:
    """The field holding a totalizer's consumption since the previous reading: `supply_m3` ->
    `supply_delta_m3` (the unit stays last)."""
    base, _, unit = quantity.rpartition("_")
    return f"{base}_delta_{unit}" if base else f"{quantity}_delta"


class RejectedInput(Exception):
    """Raised inside the pipeline for input it refuses; becomes a DeadLetter."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def raw_registers(blocks: Mapping[str, Mapping[int, int]]) -> str:
    """A stable text form of polled registers, for hashing and dead letters."""
    return ";".join(
        f"{table}:" + ",".join(f"{a}={v}" for a, v in sorted(regs.items()))
        for table, regs in sorted(blocks.items())
    )


def decode_modbus(profile: Profile, blocks: Mapping[str, Mapping[int, int]]) -> dict[str, FieldValue]:
    """Decode polled register blocks per the profile; every register of the map must be present."""
    values: dict[str, FieldValue] = {}
    for codec in codecs_for(profile):
        reg = codec.register
        table = blocks.get(reg.table, {})
        words = [table.get(a) for a in codec.addresses]
        if any(w is None for w in words):
            raise RejectedInput(
                "decode", f"{reg.quantity}: registers {reg.table} {reg.address}+{reg.count} missing"
            )
        try:
            value = codec.decode([int(w) for w in words if w is not None])
        except ValueError as exc:
            raise RejectedInput("decode", f"{reg.quantity} at {reg.table} {reg.address}: {exc}") from exc
        values[reg.quantity] = _typed(profile, reg.quantity, value)
    return values


def _typed(profile: Profile, quantity: str, value: float | bool | int | str) -> FieldValue:
    kind = profile.quantity[quantity].type
    if kind == "bool":
        return bool(value)
    if kind == "int":
        # an integer stays exact (float() of one of 400 digits was an OverflowError, a crash)
        return value if isinstance(value, int) and not isinstance(value, bool) else round(float(value))
    if kind == "string":
        return str(value)
    return float(value)


@dataclass(frozen=True)
class Payload:
    """A parsed MQTT payload: quantities, the device's own time and message id."""

    values: dict[str, FieldValue]
    device_time_ns: int | None
    message_id: str | None


def parse_payload(profile: Profile, body: bytes) -> Payload:
    """Parse and validate a JSON payload against the profile's schema."""
    if profile.mqtt is None:
        raise RejectedInput("schema", f"profile {profile.ref} has no MQTT payload")
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RejectedInput("json", f"payload is not JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RejectedInput("json", f"payload is not JSON: not UTF-8 text ({exc})") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (4,300): was a crash
        why = str(exc).split(":")[0]
        raise RejectedInput(
            "json", f"payload is not JSON we accept: a number {why[:1].lower()}{why[1:]}"
        ) from exc
    except RecursionError as exc:  # `[[[[...` nested thousands deep: was a crash of the collector
        raise RejectedInput("json", "payload is not JSON we accept: nested too deeply") from exc
    if not isinstance(raw, dict):
        raise RejectedInput("json", f"payload is a JSON {type(raw).__name__}, not an object")
    try:
        model = model_for(profile).model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {_schema_message(e)}" for e in exc.errors())
        raise RejectedInput("schema", problems) from exc
    schema = profile.mqtt
    device_time_ns = None
    if schema.timestamp_key is not None:
        device_time_ns = _device_time_ns(profile, schema.timestamp_key, raw[schema.timestamp_key])
    sequence = raw.get(schema.sequence_key) if schema.sequence_key else None
    message_id = str(sequence) if sequence is not None else None
    if message_id is None and device_time_ns is not None:
        message_id = f"t{device_time_ns}"
    values = {k: _typed(profile, k, v) for k, v in payload_to_quantities(profile, model).items()}
    return Payload(values, device_time_ns, message_id)


def _where(loc: tuple[int | str, ...]) -> str:
    # an empty key is named as "" (it was shown as the payload's top, "(top)")
    return ".".join('""' if part == "" else str(part) for part in loc) or "(top)"


def _schema_message(error: Any) -> str:
    if error["type"] == "string_unicode":  # pydantic's own words name neither the key nor the cause
        return "a key or a text holds an unpaired surrogate (\\ud800-\\udfff), not valid Unicode"
    return str(error["msg"])


#: The zone of a profile's `clock`: what a device time without an offset means.
CLOCK_ZONES = {"utc": dt.UTC, "local": SHANGHAI}


def _device_time_ns(profile: Profile, key: str, stamp: float | str) -> int:
    """The device's own time (validated as a finite number, or a string for ISO 8601) in ns."""
    assert profile.mqtt is not None  # noqa: S101 (parse_payload checked it)
    fmt = profile.mqtt.timestamp_format
    try:
        if fmt == "epoch_ms":
            return int(stamp) * 1_000_000
        if fmt == "epoch_s":
            return int(float(stamp) * NS)
        t = dt.datetime.fromisoformat(str(stamp))
        if t.tzinfo is None:  # as the profile's clock runs, not as this machine's zone
            t = t.replace(tzinfo=CLOCK_ZONES[profile.clock])
        return int(t.timestamp() * NS)
    except ValueError as exc:
        raise RejectedInput("schema", f"{key}: {stamp!r} is not ISO 8601") from exc
    except OverflowError as exc:  # 1e300 s, or year 1 with an offset: was a crash
        raise RejectedInput("schema", f"{key}: {stamp!r} is not a time a device can have") from exc


def check_values(profile: Profile, values: Mapping[str, FieldValue]) -> None:
    """Refuse NaN/Inf and values outside each quantity's valid range."""
    for name, value in values.items():
        if isinstance(value, bool | str):
            continue
        q = profile.quantity[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise RejectedInput("not_finite", f"{name} is {value}")
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            # InfluxDB would refuse the whole point (and `:g` below cannot format such an int)
            text = str(value) if len(str(value)) <= 30 else f"a {len(str(abs(value)))}-digit integer"
            raise RejectedInput("range", f"{name} = {text} is outside the 64-bit range InfluxDB stores")
        if q.min is not None and value < q.min:
            raise RejectedInput("range", f"{name} = {value:g} {q.unit} is below its minimum {q.min:g}")
        if q.max is not None and value > q.max:
            raise RejectedInput("range", f"{name} = {value:g} {q.unit} is above its maximum {q.max:g}")


def stamp(device_time_ns: int | None, received_ns: int, limits: Limits) -> tuple[int, float | None]:
    """The time a reading is stored at, and the device clock's skew when it had to be corrected.

    A device time up to `max_future_s` ahead is trusted; further ahead the clock is skewed, so the
    reading is stored at the receive time and the skew recorded. A time in the past is a delayed
    delivery (a persistent session replaying after an outage) and is kept, up to `max_past_s`.
    """
    if device_time_ns is None:
        return received_ns, None
    ahead_s = (device_time_ns - received_ns) / NS
    if ahead_s > limits.max_future_s:
        return received_ns, round(ahead_s, 3)
    if -ahead_s > limits.max_past_s:
        days = -ahead_s / 86400
        age = f"{days:.1f}" if days < 1e9 else f"{days:.3g}"  # not 200 digits for a ts of -1e308
        raise RejectedInput("too_old", f"device time is {age} days old (limit {limits.max_past_s / 86400:g})")
    return device_time_ns, None


def totalize(
    profile: Profile,
    state: DeviceState,
    values: Mapping[str, FieldValue],
    time_ns: int,
    replacements: Sequence[Swap] = (),
) -> tuple[dict[str, float], tuple[MeterEvent, ...], DeviceState, bool]:
    """Consumption since the previous reading for each totalizer, the meter events, the new state,
    and whether the reading arrived late (older than one already counted).

    - first reading of a quantity: no delta (nothing to compare with);
    - a recorded meter replacement between the previous reading and this one (`replacements`):
      (old meter's final - previous) + (current - new meter's first) and a `replacement` event, whether
      the totalizer fell or not (evidence.meters);
    - growth: the difference;
    - a drop from near the register maximum to near 0: a rollover, delta = new + (max - old);
    - any other drop: a reset (meter replaced or cleared), delta = the new reading (a replaced meter
      starts from 0) and a `reset` event; never a negative or wrapped-around huge consumption;
    - a late reading (its time is before the last counted one): delta 0, the state is unchanged,
      since the later reading already counted its water.
    """
    wraps = rollover_values(profile)
    if state.last_time_ns and time_ns <= state.last_time_ns:
        zero = {q.name: 0.0 for q in profile.quantities if q.totalizer and q.name in values}
        return zero, (), state, True
    new_last = dict(state.last)
    deltas: dict[str, float] = {}
    events: list[MeterEvent] = []
    for q in profile.quantities:
        if not q.totalizer or q.name not in values:
            continue
        current = float(values[q.name])
        previous = state.last.get(q.name)
        new_last[q.name] = current
        if previous is None:
            continue
        swaps = swaps_between(replacements, q.name, state.last_time_ns, time_ns) if replacements else ()
        if swaps:
            deltas[q.name] = interval_use(previous, current, swaps)
            events.append(MeterEvent(q.name, "replacement", previous, current))
            continue
        if current >= previous:
            deltas[q.name] = current - previous
            continue
        wrap = wraps.get(q.name)
        if wrap and previous >= wrap * (1 - ROLLOVER_BAND) and current <= wrap * ROLLOVER_BAND:
            deltas[q.name] = current + (wrap - previous)
            events.append(MeterEvent(q.name, "rollover", previous, current))
        else:
            deltas[q.name] = current
            events.append(MeterEvent(q.name, "reset", previous, current))
    resets = state.resets + sum(1 for e in events if e.kind == "reset")
    new_state = DeviceState(new_last, time_ns, state.seen, resets, state.seen_total, state.take_index())
    return deltas, tuple(events), new_state, False


def remember(state: DeviceState, message_id: str) -> tuple[bool, DeviceState]:
    """Whether `message_id` was already seen for this device, and the state remembering it."""
    index = state.take_index()
    if message_id in index:
        state._index = index
        return True, state
    seen, dropped = state.seen.added(message_id, SEEN_WINDOW)
    index.difference_update(dropped)
    index.add(message_id)
    return False, DeviceState(state.last, state.last_time_ns, seen, state.resets, state.seen_total + 1, index)


def sha256_hex(raw: str | bytes) -> str:
    """Hex SHA-256 of the raw input a reading came from (provenance)."""
    data = raw.encode() if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


def process_modbus(
    device: DeviceRef, state: DeviceState, blocks: Mapping[str, Mapping[int, int]], time_ns: int
) -> tuple[Reading | DeadLetter, DeviceState]:
    """A Modbus poll through the pipeline."""
    raw = raw_registers(blocks)
    try:
        values = decode_modbus(device.profile, blocks)
        check_values(device.profile, values)
    except RejectedInput as exc:
        return DeadLetter(device, time_ns, exc.reason, str(exc), raw), state
    deltas, events, new_state, late = totalize(device.profile, state, values, time_ns, device.replacements)
    return Reading(device, time_ns, values, deltas, sha256_hex(raw), events, late=late), new_state


def process_mqtt(
    device: DeviceRef,
    state: DeviceState,
    body: bytes,
    received_ns: int,
    limits: Limits,
    topic: str = "",
    *,
    with_deltas: bool = True,
) -> tuple[Reading | DeadLetter | None, DeviceState]:
    """An MQTT message through the pipeline; None for a duplicate already counted.

    `with_deltas=False` when collectors share a subscription: each sees only some of a device's
    messages, so a delta against its own previous one would count the others' water again. The
    readings then carry the cumulative values only, and consumption is taken from those downstream.
    """
    raw_text = body[:RAW_LIMIT].decode("utf-8", errors="replace")
    try:
        payload = parse_payload(device.profile, body)
        check_values(device.profile, payload.values)
        time_ns, skew = stamp(payload.device_time_ns, received_ns, limits)
    except RejectedInput as exc:
        return DeadLetter(device, received_ns, exc.reason, str(exc), raw_text, topic), state
    if payload.message_id is not None:
        duplicate, state = remember(state, payload.message_id)
        if duplicate:
            return None, state
    if payload.message_id is not None and payload.message_id.isascii() and payload.message_id.isdigit():
        # Two messages stamped in the same millisecond must not land on one InfluxDB point (the
        # second would overwrite the first's consumption): the sequence number breaks the tie.
        time_ns += int(payload.message_id) % 1_000_000
    if not with_deltas:
        return Reading(device, time_ns, payload.values, {}, sha256_hex(body), (), skew), state
    deltas, events, new_state, late = totalize(
        device.profile, state, payload.values, time_ns, device.replacements
    )
    reading = Reading(device, time_ns, payload.values, deltas, sha256_hex(body), events, skew, late)
    return reading, new_state
