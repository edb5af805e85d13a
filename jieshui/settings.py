"""The one settings object: every option has a `JIESHUI_` environment variable; flags override it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Connection settings shared by the collector, simulators, verification and the API."""

    model_config = SettingsConfigDict(env_prefix="JIESHUI_", extra="ignore")

    influx_url: str = "http://127.0.0.1:8086"
    influx_api: Literal["v1", "v2"] = "v1"
    influx_database: str = "jieshui"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_timeout_s: float = Field(default=10.0, gt=0)
    # How long InfluxDB keeps readings; "INF" keeps them for ever (evaluations look back a full year
    # and appeals can come later, so the default is to keep everything).
    influx_retention: str = "INF"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    db_url: str = "sqlite:///var/jieshui.sqlite3"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
