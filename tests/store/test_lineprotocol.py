"""Line protocol escaping, to the character, and agreement with influxdb-client's serialiser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point as ClientPoint

from store.lineprotocol import LineProtocolError, Point, encode_batch, encode_point, series_key

TAGS = {"district": "changning", "community": "xinjing-6", "device": "rw-controller"}


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "expected"),
    [
        pytest.param(
            "rainwater_system",
            TAGS,
            {"level_pct": 42.5},
            "rainwater_system,community=xinjing-6,device=rw-controller,district=changning level_pct=42.5 7",
            id="plain-tags-sorted",
        ),
        pytest.param(
            "h2 o",
            {"location": "europe"},
            {"level": 2},
            r"h2\ o,location=europe level=2i 7",
            id="space-in-measurement",
        ),
        pytest.param("a,b", {"k": "v"}, {"f": 1.0}, r"a\,b,k=v f=1 7", id="comma-in-measurement"),
        pytest.param("m=1", {"k": "v"}, {"f": 1.0}, "m=1,k=v f=1 7", id="equals-in-measurement-not-escaped"),
        pytest.param(
            "m", {"tag key": "a value"}, {"f": 1.0}, r"m,tag\ key=a\ value f=1 7", id="space-in-tag"
        ),
        pytest.param("m", {"k,1": "v,1"}, {"f": 1.0}, r"m,k\,1=v\,1 f=1 7", id="comma-in-tag"),
        pytest.param("m", {"k=1": "v=1"}, {"f": 1.0}, r"m,k\=1=v\=1 f=1 7", id="equals-in-tag"),
        pytest.param("m", {"k": 'say "hi"'}, {"f": 1.0}, 'm,k=say\\ "hi" f=1 7', id="quotes-in-tag-kept"),
        pytest.param(
            "m", {"k": r"C:\meters"}, {"f": 1.0}, r"m,k=C:\meters f=1 7", id="backslash-in-tag-kept"
        ),
        pytest.param(
            "m",
            {"community": "新泾六村"},
            {"名称": "新泾六村 雨水"},
            'm,community=新泾六村 名称="新泾六村 雨水" 7',
            id="unicode-community",
        ),
        pytest.param(
            "m",
            {},
            {"note": 'a "quoted" \\ text'},
            r'm note="a \"quoted\" \\ text" 7',
            id="string-field-escapes-quote-and-backslash",
        ),
        pytest.param("m", {}, {"f": "a,b=c d"}, 'm f="a,b=c d" 7', id="string-field-keeps-separators"),
        pytest.param(
            "m", {}, {"field key": 1.5, "a=b": 2.0}, r"m a\=b=2,field\ key=1.5 7", id="field-key-escapes"
        ),
        pytest.param("m", {}, {"ok": True, "bad": False}, "m bad=false,ok=true 7", id="booleans"),
        pytest.param(
            "m", {}, {"n": -3, "x": 1e-05, "y": 1.5e20}, "m n=-3i,x=1e-05,y=1.5e+20 7", id="numbers"
        ),
        pytest.param("m", {"empty": "", "k": "v"}, {"f": 1.0}, "m,k=v f=1 7", id="empty-tag-left-out"),
    ],
)
def test_encode_point_escapes_exactly(
    measurement: str, tags: dict[str, str], fields: dict[str, float | int | bool | str], expected: str
) -> None:
    assert encode_point(measurement, tags, fields, 7) == expected


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "message"),
    [
        pytest.param("", {}, {"f": 1.0}, "measurement must not be empty", id="empty-measurement"),
        pytest.param("#m", {}, {"f": 1.0}, "starts with '#'", id="comment-measurement"),
        pytest.param(
            "m", {"k": "a\nb"}, {"f": 1.0}, "tag 'k' value 'a\\nb' contains a newline", id="newline-tag"
        ),
        pytest.param(
            "m\tx", {}, {"f": 1.0}, "contains a newline, carriage return or tab", id="tab-measurement"
        ),
        pytest.param(
            "m",
            {"k": "end\\"},
            {"f": 1.0},
            "backslash before a space, comma or equals sign or at its end",
            id="trailing-backslash",
        ),
        pytest.param("m", {"k": "a\\,b"}, {"f": 1.0}, "backslash before a space", id="backslash-comma"),
        pytest.param("m", {}, {}, "has no fields", id="no-fields"),
        pytest.param("m", {}, {"f": math.nan}, "field 'f' is nan", id="nan"),
        pytest.param("m", {}, {"f": math.inf}, "field 'f' is inf", id="inf"),
        pytest.param("m", {}, {"f": None}, "unsupported type NoneType", id="none"),
        pytest.param("m", {}, {"f": "x" * 70000}, "longer than 65535 bytes", id="huge-string"),
    ],
)
def test_unrepresentable_points_are_refused_with_the_culprit(
    measurement: str, tags: dict[str, str], fields: dict[str, object], message: str
) -> None:
    with pytest.raises(LineProtocolError, match=None) as info:
        encode_point(measurement, tags, fields, 7)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_float_time_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="non-integer time"):
        encode_point("m", {}, {"f": 1.0}, 1.5)  # type: ignore[arg-type]


def test_point_reuses_a_precomputed_series_key() -> None:
    key = series_key("water_meter", TAGS)
    point = Point("ignored", {}, {"volume_m3": 12.5}, 9, _key=key)
    assert point.to_line() == f"{key} volume_m3=12.5 9"


def test_batch_is_newline_separated_utf8() -> None:
    points = [Point("m", {"c": "新泾六村"}, {"f": float(i)}, i) for i in range(3)]
    assert encode_batch(points) == "m,c=新泾六村 f=0 0\nm,c=新泾六村 f=1 1\nm,c=新泾六村 f=2 2".encode()


# Text that both serialisers can represent: no control characters, no backslash next to a separator.
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith("#"))
_field_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**63 - 1), st.booleans(), _text
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=_text,
    tags=st.dictionaries(_text, _text, max_size=4),
    fields=st.dictionaries(_text, _field_value, min_size=1, max_size=4),
    time_ns=st.integers(0, 2**62),
)
def test_matches_influxdb_client_serialisation(
    measurement: str, tags: dict[str, str], fields: dict[str, float | int | bool | str], time_ns: int
) -> None:
    client = ClientPoint(measurement)
    for key, value in tags.items():
        client.tag(key, value)
    for key, value in fields.items():
        client.field(key, value)
    client.time(time_ns)
    assert encode_point(measurement, tags, fields, time_ns) == client.to_line_protocol()
