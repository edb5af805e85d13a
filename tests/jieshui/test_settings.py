"""Settings: JIESHUI_* variables override defaults; the store config takes them over."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jieshui.settings import Settings
from store.influx import InfluxConfig


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIESHUI_INFLUX_URL", "http://influx.example:8086")
    monkeypatch.setenv("JIESHUI_INFLUX_DATABASE", "changning")
    monkeypatch.setenv("JIESHUI_INFLUX_PASSWORD", "s3cret")
    settings = Settings()
    config = InfluxConfig.from_settings(settings)
    assert (config.url, config.database, config.api) == ("http://influx.example:8086", "changning", "v1")
    assert config.password is not None
    assert config.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # secrets never print


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIESHUI_INFLUX_API", "v9")
    with pytest.raises(ValidationError, match="influx_api"):
        Settings()


def test_v2_target_is_the_bucket() -> None:
    assert InfluxConfig(api="v2", bucket="water", database="jieshui").target == "water"
    assert InfluxConfig(api="v1", bucket="water", database="jieshui").target == "jieshui"


def test_urls_in_messages_never_show_a_password() -> None:
    from jieshui.settings import parse_mqtt_url, redact_url

    assert redact_url("mqtt://dev:s%40cret@broker:1883") == "mqtt://dev:***@broker:1883"
    assert redact_url("https://admin:pw@influx.example:8086/") == "https://admin:***@influx.example:8086/"
    assert redact_url("http://127.0.0.1:8086") == "http://127.0.0.1:8086"
    assert redact_url("http://user@h:1") == "http://user@h:1"  # a user name alone is no secret
    with pytest.raises(ValueError, match=r"'mqtt://dev:\*\*\*@broker:x' has an invalid port") as raised:
        parse_mqtt_url("mqtt://dev:s3cret@broker:x")
    assert "s3cret" not in str(raised.value)
