"""The one settings object: every option has a `JIESHUI_` environment variable; flags override it."""

from __future__ import annotations

import socket
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr
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
    # https:// URLs: trust this CA (a private or self-signed one) instead of the system's CAs
    influx_ca_file: str | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_ca_file: str | None = None  # mqtts://: trust this CA (e.g. a self-signed broker certificate)
    db_url: str = "sqlite:///var/jieshui.sqlite3"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    # collector
    collector_id: str = Field(default_factory=lambda: socket.gethostname().split(".")[0] or "collector")
    buffer_path: str | None = None  # default var/collector/<collector_id>.sqlite3
    buffer_max_lines: int = Field(default=5_000_000, gt=0)
    buffer_sync: Literal["FULL", "NORMAL"] = "FULL"
    # released when the buffer's disk fills, so the drainer can still delete (docs/reliability.md)
    buffer_reserve_mb: float = Field(default=8.0, ge=0, le=4096)
    health_host: str = "127.0.0.1"  # 0.0.0.0: let a Prometheus on another host scrape /metrics
    health_port: int = Field(default=9108, ge=0, le=65535)
    health_interval_s: float = Field(default=10.0, gt=0)  # collector_health points
    device_health_interval_s: float = Field(default=60.0, gt=0)  # device_health points, one per device
    mqtt_share_group: str | None = None
    mqtt_session_expiry_s: int = Field(default=7 * 86400, ge=0)
    # a link cut silently (no reset) is noticed after about 1.5 x this
    mqtt_keepalive_s: int = Field(default=30, ge=2, le=65535)
    poll_interval_s: float | None = Field(default=None, gt=0)
    modbus_timeout_s: float = Field(default=2.0, gt=0)
    flush_interval_s: float = Field(default=1.0, gt=0)
    # api (docs/api.md): alert thresholds and token lifetime
    api_silent_intervals: float = Field(default=5.0, gt=0)  # a device silent this many intervals: alert
    api_overflow_pct: float = Field(default=95.0, gt=0, le=100)
    api_low_pct: float = Field(default=15.0, ge=0, lt=100)
    api_dry_days: float = Field(default=1.0, gt=0)
    api_token_ttl_s: float = Field(default=3600.0, gt=0)
    # a community's status is reused this long (its readings change once per poll interval); 0: never
    api_status_cache_s: float = Field(default=10.0, ge=0, le=300)
    api_auth_cache_s: float = Field(default=10.0, ge=0, le=300)  # keys revoked elsewhere: within this
    api_registry_cache_s: float = Field(default=10.0, ge=0, le=300)  # forms imported elsewhere: within this
    # failed authentications from one address (or for one key id) within the window: then 429; 0: no limit
    api_auth_failures: int = Field(default=10, ge=0)
    api_auth_window_s: float = Field(default=60.0, gt=0, le=86400)
    # the programme (docs/programme.md): the yearly application deadline, MM-DD (the 2020 notice: 10-18)
    application_deadline: str = Field(default="10-18", pattern=r"^\d{2}-\d{2}$")


class MqttEndpoint(BaseModel):
    """A broker address parsed from `mqtt://user:pass@host:port` (`mqtts://` for TLS)."""

    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False


def redact_url(url: str) -> str:
    """`url` as messages may show it: a password in it replaced by `***` (the user name stays, it says
    which account was refused)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse an MQTT URL; raise ValueError naming what is wrong (never quoting a password)."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"MQTT URL {shown!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"MQTT URL {shown!r} has no host")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"MQTT URL {shown!r} has an invalid port") from exc
    return MqttEndpoint(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
        tls=tls,
    )
