r"""Line protocol: the one format every reading takes on its way into InfluxDB.

Pure functions, no I/O. The escaping follows InfluxDB's line-protocol reference (and matches
influxdb-client's `Point.to_line_protocol` character for character, which a test checks over generated
points), with two deliberate differences that a round trip through a real influxd proved necessary:
- control characters (newline, carriage return, tab) are refused rather than escaped: influxd 1.x does
  not unescape `\n` in keys or tag values, so the stored value would differ from the one sent;
- a backslash right before a character that needs escaping (`,`, ` `, `=`) or at the end of a name or
  tag value is refused: influxd 1.x unescapes only `\,`, `\ ` and `\=` there, so no encoding of such
  a text reads back unchanged (influxdb-client's workaround for a trailing one appends a space).
  String field values escape backslashes and quotes and round-trip exactly.
Tags are sorted by key (the order InfluxDB indexes them in) and the series key of a device, which does
not change between readings, can be encoded once with `series_key` and reused by `encode_line`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from jieshui.errors import JieshuiError

FieldValue = float | int | bool | str

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_CONTROL = frozenset("\n\r\t")
_AMBIGUOUS_BACKSLASH = re.compile(r"\\([ ,=]|$)")
_SUSPECT = re.compile(r"[\n\r\t\\]")
# InfluxDB's limit on string field values (64 KiB); longer values are refused by the server.
MAX_STRING_FIELD_BYTES = 64 * 1024 - 1


class LineProtocolError(JieshuiError, ValueError):
    """A point cannot be expressed in line protocol; the message names the offending part."""


@dataclass(frozen=True, slots=True)
class Point:
    """One reading as InfluxDB stores it: measurement, tags, fields and a UTC time in nanoseconds."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int
    _key: str = field(default="", compare=False, repr=False)

    def to_line(self) -> str:
        """Encode this point as one line of line protocol (no trailing newline)."""
        return encode_line(self._key or series_key(self.measurement, self.tags), self.fields, self.time_ns)


def _check_text(kind: str, text: str) -> None:
    if not text:
        raise LineProtocolError(f"{kind} must not be empty")
    if _SUSPECT.search(text) is None:
        return  # the common case: one scan, nothing to refuse
    if not _CONTROL.isdisjoint(text):
        raise LineProtocolError(f"{kind} {text!r} contains a newline, carriage return or tab")
    if _AMBIGUOUS_BACKSLASH.search(text):
        raise LineProtocolError(
            f"{kind} {text!r} has a backslash before a space, comma or equals sign or at its end, "
            "which InfluxDB cannot store unchanged"
        )


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """Encode `measurement,tag=value,...` with tags sorted by key; empty tag values are left out."""
    _check_text("measurement", measurement)
    if measurement.startswith("#"):
        raise LineProtocolError(f"measurement {measurement!r} starts with '#', which marks a comment")
    parts = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB has no empty tag values: an empty tag is an absent tag
        _check_text("tag key", key)
        _check_text(f"tag {key!r} value", value)
        parts.append(f"{key.translate(_ESCAPE_KEY)}={value.translate(_ESCAPE_KEY)}")
    return ",".join(parts)


def encode_field(key: str, value: FieldValue) -> str:
    """Encode one `key=value` field: float as is, int with `i`, bool as true/false, str quoted."""
    # floats first: most fields of most readings are; bool before int: bool is a subclass of int.
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field {key!r} is {value}, which InfluxDB cannot store")
        text = repr(value)
        if text.endswith(".0"):
            text = text[:-2]  # whole floats as `2`, like influxdb-client; the field stays a float
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value}i"
    elif isinstance(value, str):
        if len(value.encode()) > MAX_STRING_FIELD_BYTES:
            raise LineProtocolError(f"field {key!r} is longer than {MAX_STRING_FIELD_BYTES} bytes")
        text = f'"{value.translate(_ESCAPE_STRING)}"'
    else:
        raise LineProtocolError(f"field {key!r} has unsupported type {type(value).__name__}")
    return f"{_field_key(key)}={text}"


@functools.lru_cache(maxsize=4096)
def _field_key(key: str) -> str:
    """Checked and escaped field key; a profile has few, so each is worked out once."""
    _check_text("field key", key)
    return key.translate(_ESCAPE_KEY)


def encode_line(key: str, fields: Mapping[str, FieldValue], time_ns: int) -> str:
    """Encode a line from a pre-encoded series key, the fields (sorted by key) and a time in ns."""
    if not fields:
        raise LineProtocolError(f"point {key!r} has no fields")
    if not isinstance(time_ns, int) or isinstance(time_ns, bool):
        raise LineProtocolError(f"point {key!r} has a non-integer time {time_ns!r}")
    body = ",".join(encode_field(k, fields[k]) for k in sorted(fields))
    return f"{key} {body} {time_ns}"


def encode_point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time_ns: int
) -> str:
    """Encode one point as one line of line protocol."""
    return encode_line(series_key(measurement, tags), fields, time_ns)


def encode_batch(points: Iterable[Point]) -> bytes:
    """Encode points as a newline-separated UTF-8 body for one write request."""
    return "\n".join(p.to_line() for p in points).encode()


def encode_columns(
    key: str,
    columns: Mapping[str, Sequence[FieldValue] | npt.NDArray[Any]],
    time_ns: Sequence[int] | npt.NDArray[np.int64],
) -> list[str]:
    """Encode many points of one series at once from equally long columns of values.

    The fast path of the backfill and the collector's batch writer: each column's type is worked out
    and checked once (floats finite, strings escaped, booleans spelt), then every row is one
    %-format of a template, several times faster than encoding point by point.
    """
    names = sorted(columns)
    parts: list[str] = []
    prepared: list[list[object]] = []
    for name in names:
        col = columns[name]
        values: list[object] = col.tolist() if hasattr(col, "tolist") else list(col)
        if len(values) != len(time_ns):
            raise LineProtocolError(f"field {name!r} has {len(values)} values for {len(time_ns)} times")
        prefix = _field_key(name) + "="
        kinds = {v.__class__ for v in values}
        if kinds <= {float}:
            bad = next((v for v in values if not math.isfinite(v)), None)  # type: ignore[arg-type]
            if bad is not None:
                raise LineProtocolError(f"field {name!r} is {bad}, which InfluxDB cannot store")
            parts.append(prefix + "%r")
        elif kinds <= {bool}:
            values = ["true" if v else "false" for v in values]
            parts.append(prefix + "%s")
        elif kinds <= {int}:
            parts.append(prefix + "%di")
        elif kinds <= {str}:
            values = [encode_field(name, v).split("=", 1)[1] for v in values]  # type: ignore[arg-type]
            parts.append(prefix + "%s")
        else:
            raise LineProtocolError(f"field {name!r} mixes types {sorted(k.__name__ for k in kinds)}")
        prepared.append(values)
    if not names:
        raise LineProtocolError(f"series {key!r} has no fields")
    template = key + " " + ",".join(parts) + " %d"
    times = time_ns.tolist() if hasattr(time_ns, "tolist") else list(time_ns)
    return [template % row for row in zip(*prepared, times, strict=True)]
