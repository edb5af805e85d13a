"""The store against a real influxd: round trips, server-side aggregation, bootstrap, precise errors."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from jieshui.errors import (
    DatabaseNotFoundError,
    PartialWriteError,
    QueryError,
    StoreAuthError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from jieshui.services import InfluxServer, free_port
from store.influx import InfluxConfig, InfluxStore, quote_ident, quote_literal
from store.lineprotocol import Point
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE_NS = 60 * 10**9


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 10**9


TRICKY = [
    "新泾六村",
    "Xinjing No. 6",
    "a,b",
    "k=v",
    'say "hi"',
    r"C:\meters\5",
    "tab-free, comma,equals=all ",
    "雨水 回用,一期=A",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tags_and_string_fields_round_trip_exactly(influx: InfluxStore, text: str) -> None:
    influx.write(
        [Point("water meter", {"community": text, "device": "m1"}, {"note": text, "v": 1.0}, 10**18)]
    )
    series = influx.query(
        'SELECT "note", "v" FROM "water meter" WHERE "community" = $c GROUP BY "community"',
        params={"c": text},
    )
    assert len(series) == 1
    assert series[0].tags == {"community": text}
    assert list(series[0].columns["note"]) == [text]
    assert series[0].values("v").tolist() == [1.0]


def test_quoting_helpers_survive_a_real_query(influx: InfluxStore) -> None:
    influx.write([Point('we"ird', {"c": "it's"}, {"v": 2.5}, 10**18)])
    measurement, value = quote_ident('we"ird'), quote_literal("it's")
    series = influx.query(f"SELECT v FROM {measurement} WHERE c = {value}")
    assert series[0].values("v").tolist() == [2.5]


def test_daily_sums_are_grouped_by_shanghai_day_server_side(influx: InfluxStore) -> None:
    # One reading a minute for three local days and one rain event of 0.2 mm/min from 23:00 on the
    # 20th to 01:00 on the 21st, local time. Local midnight is 16:00 UTC, so the event lies inside one
    # UTC day: only grouping by Shanghai days splits it 12 mm / 12 mm as an evaluator's calendar does.
    start = dt.datetime(2025, 6, 20, tzinfo=SHANGHAI)
    minutes = 3 * 24 * 60
    times = np.array([_ns(start) + i * MINUTE_NS for i in range(minutes)], dtype=np.int64)
    minute_of_run = np.arange(minutes)
    rain_mm = np.where((minute_of_run >= 23 * 60) & (minute_of_run < 25 * 60), 0.2, 0.0)
    points = [
        Point("rainwater_system", {"community": "xinjing-6", "device": "rw"}, {"rain_mm": float(r)}, int(t))
        for t, r in zip(times, rain_mm, strict=True)
    ]
    assert influx.write(points, batch_points=1000) == minutes

    series = influx.query(
        "SELECT sum(rain_mm) FROM rainwater_system WHERE device = $d AND time >= $a AND time < $b "
        "GROUP BY time(1d) tz('Asia/Shanghai')",
        params={"d": "rw", "a": int(times[0]), "b": int(times[-1]) + MINUTE_NS},
    )
    assert len(series) == 1
    day = series[0]
    assert day.time.dtype == np.dtype("datetime64[ns]")
    local_days = [
        dt.datetime.fromtimestamp(int(t) / 1e9, tz=dt.UTC).astimezone(SHANGHAI).date()
        for t in day.time.astype(np.int64)
    ]
    assert local_days == [dt.date(2025, 6, 20), dt.date(2025, 6, 21), dt.date(2025, 6, 22)]
    # numpy reference: bin by local date.
    local_day_index = np.arange(minutes) // (24 * 60)
    expected = np.bincount(local_day_index, weights=rain_mm)
    np.testing.assert_allclose(day.values("sum"), expected, rtol=1e-9)
    assert day.values("sum").tolist() == pytest.approx([12.0, 12.0, 0.0])

    (utc,) = influx.query(
        "SELECT sum(rain_mm) FROM rainwater_system WHERE time >= $a AND time < $b GROUP BY time(1d)",
        params={"a": int(times[0]), "b": int(times[-1]) + MINUTE_NS},
    )
    assert 24.0 in utc.values("sum").round(9).tolist()  # the whole event in one UTC day


def test_group_by_tag_returns_one_series_per_device(influx: InfluxStore) -> None:
    influx.write(
        Point("water_meter", {"device": d}, {"volume_m3": float(i)}, 10**18 + i)
        for i, d in enumerate(["a", "b", "a", "c"])
    )
    series = influx.query('SELECT count(volume_m3) FROM water_meter GROUP BY "device"')
    assert {s.tags["device"]: s.values("count").tolist() for s in series} == {
        "a": [2.0],
        "b": [1.0],
        "c": [1.0],
    }


def test_nulls_become_nan(influx: InfluxStore) -> None:
    influx.write([Point("m", {}, {"a": 1.0}, 1), Point("m", {}, {"b": 2.0}, 2)])
    (series,) = influx.query("SELECT a, b FROM m")
    assert np.isnan(series.values("a")[1])
    assert np.isnan(series.values("b")[0])


def test_bootstrap_is_idempotent_and_applies_retention(influx_server: InfluxServer) -> None:
    config = InfluxConfig(url=influx_server.url, database="t_retention", retention="52w")
    with InfluxStore(config) as store:
        store.bootstrap()
        store.bootstrap()
        (policies,) = store.query('SHOW RETENTION POLICIES ON "t_retention"')
        assert list(policies.columns["duration"]) == ["8736h0m0s"]
        assert list(policies.columns["default"]) == [True]
        store.execute('DROP DATABASE "t_retention"')


def test_write_to_missing_database_names_it(influx_server: InfluxServer) -> None:
    with InfluxStore(InfluxConfig(url=influx_server.url, database="never_created")) as store:
        with pytest.raises(DatabaseNotFoundError, match="'never_created' does not exist") as info:
            store.write([Point("m", {}, {"v": 1.0}, 1)])
        assert info.value.status == 404
        assert "run the bootstrap" in str(info.value)
        with pytest.raises(DatabaseNotFoundError, match="never_created"):
            store.query("SELECT * FROM m")


def test_partial_write_keeps_the_good_points_and_says_what_was_dropped(influx: InfluxStore) -> None:
    influx.write([Point("m", {}, {"v": 1.0}, 1)])
    with pytest.raises(PartialWriteError, match="field type conflict") as info:
        influx.write_body(b'm v="text" 2\nm v=3 3')
    assert "dropped=1" in info.value.rejected
    assert not info.value.retryable
    (series,) = influx.query("SELECT v FROM m")
    assert series.values("v").tolist() == [1.0, 3.0]


def test_unparsable_line_is_refused_with_influxdb_reason(influx: InfluxStore) -> None:
    with pytest.raises(StoreError, match="unable to parse 'm v=': missing field value") as info:
        influx.write_body(b"m v=")
    assert info.value.status == 400


def test_bad_influxql_is_a_query_error(influx: InfluxStore) -> None:
    with pytest.raises(QueryError, match="error parsing query: found SELEC"):
        influx.query("SELEC * FROM m")
    with pytest.raises(QueryError, match="undefined function nonsense"):
        influx.query("SELECT nonsense(v) FROM m")


def test_wrong_password_is_an_auth_error(influx_auth_server: InfluxServer) -> None:
    config = InfluxConfig(url=influx_auth_server.url, username=ADMIN_USER, password="wrong", database="x")
    with InfluxStore(config) as store:
        with pytest.raises(
            StoreAuthError, match=f"refused the credentials \\(user '{ADMIN_USER}'\\)"
        ) as info:
            store.write([Point("m", {}, {"v": 1.0}, 1)])
        assert info.value.status == 401
        with pytest.raises(StoreAuthError):
            store.query("SHOW DATABASES")


def test_missing_credentials_are_an_auth_error(influx_auth_server: InfluxServer) -> None:
    store = InfluxStore(InfluxConfig(url=influx_auth_server.url, database="x"))
    with (
        store,
        pytest.raises(StoreAuthError, match="InfluxDB requires credentials and none were given"),
    ):
        store.bootstrap()


def test_right_credentials_bootstrap_write_and_read(influx_auth_server: InfluxServer) -> None:
    config = InfluxConfig(
        url=influx_auth_server.url, username=ADMIN_USER, password=ADMIN_PASSWORD, database="t_auth"
    )
    with InfluxStore(config) as store:
        store.bootstrap()
        store.write([Point("m", {}, {"v": 4.0}, 1)])
        assert store.query("SELECT v FROM m")[0].values("v").tolist() == [4.0]


def test_a_server_that_does_not_answer_times_out(influx_server: InfluxServer) -> None:
    config = InfluxConfig(url=influx_server.url, database="t_timeout", timeout_s=0.3)
    with InfluxStore(config) as store:
        influx_server.pause()
        try:
            with pytest.raises(StoreTimeoutError, match=r"did not answer within 0\.3 s") as info:
                store.write([Point("m", {}, {"v": 1.0}, 1)])
        finally:
            influx_server.resume()
        assert info.value.retryable


def test_an_unreachable_server_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with InfluxStore(InfluxConfig(url=url, timeout_s=1)) as store:
        with pytest.raises(StoreUnavailableError, match="InfluxDB unreachable") as info:
            store.ping()
        assert info.value.retryable
        assert url in str(info.value)


def test_ping_reports_the_server_version(influx: InfluxStore) -> None:
    assert influx.ping().startswith("1.")
