"""The store: the only module that talks to InfluxDB (and the only importer of influxdb-client).

Writes are line protocol, either to the v1 API (`POST /write`, InfluxDB 1.x and 3.x) or to the v2 API
through influxdb-client (2.x, 3.x). Reads are InfluxQL over `/query` (native in 1.x and 3.x, through
the v1-compatibility API and a DBRP mapping in 2.x) and come back as numpy arrays. Every failure is
turned into one of the `StoreError` types of `jieshui.errors`, naming the URL and what InfluxDB said,
with `retryable` telling the collector's buffer whether to try again.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from jieshui.errors import (
    DatabaseNotFoundError,
    JieshuiError,
    PartialWriteError,
    QueryError,
    StoreAuthError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from jieshui.settings import Settings, redact_url
from jieshui.tls import client_context, find_verification_error, untrusted_message
from store.lineprotocol import Point

#: Points per write request. InfluxDB's documentation recommends 5,000-10,000 lines per batch.
DEFAULT_BATCH_POINTS = 5000

#: The variable that names the CA to trust for https:// URLs, for error messages.
CA_FILE_VARIABLE = "JIESHUI_INFLUX_CA_FILE"
#: What InfluxDB (Go's net/http) answers a plain-HTTP request on its HTTPS port, with status 400.
_PLAIN_HTTP_TO_TLS = "Client sent an HTTP request to an HTTPS server"


class InfluxConfig(BaseModel):
    """Where and how to reach InfluxDB; built from `Settings` or given directly (tests, demo)."""

    model_config = ConfigDict(frozen=True)

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    database: str = Field(default="jieshui", min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    org: str | None = None
    bucket: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    retention: str = "INF"
    ca_file: str | None = None  # https://: trust this CA instead of the system's (a private CA)

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxConfig:
        """Take the `JIESHUI_INFLUX_*` settings."""
        return cls(
            url=settings.influx_url,
            api=settings.influx_api,
            database=settings.influx_database,
            username=settings.influx_username,
            password=settings.influx_password,
            token=settings.influx_token,
            org=settings.influx_org,
            bucket=settings.influx_bucket,
            timeout_s=settings.influx_timeout_s,
            retention=settings.influx_retention,
            ca_file=settings.influx_ca_file,
        )

    @property
    def target(self) -> str:
        """The database (v1) or bucket (v2) that readings go to."""
        return (self.bucket or self.database) if self.api == "v2" else self.database


@dataclass(frozen=True)
class Series:
    """One series of an InfluxQL result: times as datetime64[ns] (UTC), numeric columns as float64.

    A column that holds text (a tag selected as a column, a string field) stays an object array.
    Results without a time column (SHOW statements) have an empty `time`.
    """

    name: str
    tags: Mapping[str, str]
    time: npt.NDArray[np.datetime64]
    columns: Mapping[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), self.time)
        return int(first.shape[0])

    def values(self, column: str) -> npt.NDArray[np.float64]:
        """A numeric column as float64 (NaN where the server returned null)."""
        col = self.columns[column]
        if col.dtype != np.float64:
            raise QueryError(f"column {column!r} of series {self.name!r} is not numeric")
        return col


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement, tag or field name)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(text: str) -> str:
    """Quote an InfluxQL string literal (a tag value in a WHERE clause)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _series_from_json(raw: Mapping[str, Any]) -> Series:
    columns: list[str] = list(raw["columns"])
    rows: list[list[Any]] = raw.get("values") or []
    has_time = bool(columns) and columns[0] == "time"
    times = [r[0] for r in rows] if has_time else []
    time = np.array(times, dtype=np.int64).astype("datetime64[ns]")
    out: dict[str, npt.NDArray[Any]] = {}
    for i, col in enumerate(columns[1:] if has_time else columns, start=1 if has_time else 0):
        cells = [r[i] for r in rows]
        if all(c is None or (isinstance(c, int | float) and not isinstance(c, bool)) for c in cells):
            out[col] = np.array(cells, dtype=np.float64)  # None becomes NaN
        else:
            out[col] = np.array(cells, dtype=object)
    return Series(name=str(raw.get("name", "")), tags=dict(raw.get("tags") or {}), time=time, columns=out)


class InfluxStore:
    """A connection to one InfluxDB database or bucket: bootstrap, write line protocol, query InfluxQL."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        headers = {"User-Agent": "jieshui"}
        auth: httpx.BasicAuth | None = None
        if config.token is not None:
            headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        elif config.username is not None:
            password = config.password.get_secret_value() if config.password else ""
            auth = httpx.BasicAuth(config.username, password)
        # Certificates are always verified: against the CA file when one is given, else the system's
        # CAs (httpx's default). A CA file that cannot be loaded is a configuration error, said now.
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            try:
                verify = client_context(config.ca_file, CA_FILE_VARIABLE)
            except JieshuiError as exc:
                raise StoreError(str(exc), url=redact_url(config.url)) from exc
        self._where = redact_url(config.url).rstrip("/")  # the URL messages show: no password
        self._http = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=config.timeout_s,
            verify=verify,
        )
        self._v2_write: Any = None
        self._v2_lock = threading.Lock()  # the collector writes from two threads at once
        self._v2_client: Any = None

    # -- plumbing -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self._where}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise StoreTimeoutError(
                f"InfluxDB did not answer within {self.config.timeout_s:g} s", url=url
            ) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc, url) from exc
        if response.status_code >= 300:
            self._raise_for(response, url)
        return response

    def _unreachable(self, exc: Exception, url: str) -> StoreUnavailableError:
        """The error for a request that never reached InfluxDB, naming a TLS problem precisely.

        Retryable, like a refused connection: the collector keeps its buffer and tries again, so a
        certificate renewed or a CA file fixed (and the collector restarted) loses nothing.
        """
        refused = find_verification_error(exc)
        if refused is not None:
            return StoreUnavailableError(
                untrusted_message(self._where, refused, CA_FILE_VARIABLE, self.config.ca_file), url=url
            )
        if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc):
            return StoreUnavailableError(
                f"InfluxDB did not answer TLS at {self._where} ({exc}): it seems to serve plain HTTP; "
                "use http:// in JIESHUI_INFLUX_URL, or enable HTTPS on the server",
                url=url,
            )
        return StoreUnavailableError(f"InfluxDB unreachable: {exc}", url=url)

    def _raise_for(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        try:
            message = str(response.json().get("error") or response.json().get("message") or response.text)
        except ValueError:
            message = response.text.strip() or response.reason_phrase
        if status == 400 and _PLAIN_HTTP_TO_TLS in message:
            # retryable: a configuration to fix, not points to refuse (the collector keeps its buffer)
            raise StoreUnavailableError(
                f"InfluxDB at {self._where} serves HTTPS only ({message.strip()}): use https:// in "
                f"JIESHUI_INFLUX_URL, and {CA_FILE_VARIABLE} if its certificate comes from a private CA",
                status=status,
                url=url,
            )
        if status in (401, 403):
            if self.config.token is None and self.config.username is None:
                raise StoreAuthError(
                    "InfluxDB requires credentials and none were given (set JIESHUI_INFLUX_USERNAME and "
                    f"JIESHUI_INFLUX_PASSWORD, or JIESHUI_INFLUX_TOKEN): {message}",
                    status=status,
                    url=url,
                )
            who = "token" if self.config.token else f"user {self.config.username!r}"
            raise StoreAuthError(
                f"InfluxDB refused the credentials ({who}): {message}", status=status, url=url
            )
        if status == 404 and ("database not found" in message or "bucket" in message):
            raise DatabaseNotFoundError(
                f"{self.config.target!r} does not exist ({message}); run the bootstrap to create it",
                status=status,
                url=url,
            )
        # A batch whose points clash with stored field types may be partly written: 1.x says "partial
        # write" when it kept some points, or only "field type conflict" when the batch opened a shard.
        if "partial write" in message or "field type conflict" in message:
            raise PartialWriteError(
                f"InfluxDB rejected points of the batch (any others are stored): {message}",
                rejected=message,
                status=status,
                url=url,
            )
        if status == 413:
            raise StoreError(f"write request too large for InfluxDB: {message}", status=status, url=url)
        if status == 400 and url.endswith("/query"):
            raise QueryError(f"InfluxQL refused: {message}", status=status, url=url)
        if status >= 500 or status == 429:
            raise StoreUnavailableError(f"InfluxDB failed ({status}): {message}", status=status, url=url)
        raise StoreError(f"InfluxDB refused the request ({status}): {message}", status=status, url=url)

    # -- lifecycle ------------------------------------------------------------------------------
    def ping(self) -> str:
        """Check InfluxDB answers; return its version."""
        response = self._request("GET", "/ping")
        return str(response.headers.get("X-Influxdb-Version", "unknown"))

    def bootstrap(self) -> None:
        """Create the database (v1) or bucket and its DBRP mapping (v2) with the configured retention."""
        if self.config.api == "v1":
            db = quote_ident(self.config.database)
            self.execute(f"CREATE DATABASE {db}")
            # CREATE DATABASE ... WITH DURATION conflicts with an existing database whose policy
            # differs; altering the default policy is idempotent and applies a changed setting.
            self.execute(f'ALTER RETENTION POLICY "autogen" ON {db} DURATION {self.config.retention} DEFAULT')
        else:
            self._bootstrap_v2()

    def _bootstrap_v2(self) -> None:
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules
        from influxdb_client.domain.dbrp_create import DBRPCreate
        from influxdb_client.service.dbrps_service import DBRPsService

        client = self._v2()
        bucket_name = self.config.target
        try:
            buckets = client.buckets_api()
            bucket = buckets.find_bucket_by_name(bucket_name)
            if bucket is None:
                rules = []
                if self.config.retention.upper() != "INF":
                    seconds = int(_duration_seconds(self.config.retention))
                    rules = [BucketRetentionRules(type="expire", every_seconds=seconds)]  # type: ignore[no-untyped-call]
                bucket = buckets.create_bucket(
                    bucket_name=bucket_name, retention_rules=rules, org=self.config.org
                )
            dbrps = DBRPsService(client.api_client)
            existing = dbrps.get_dbrps(org=self.config.org, bucket_id=bucket.id)
            if not existing.content:
                dbrps.post_dbrp(
                    DBRPCreate(  # type: ignore[no-untyped-call]
                        org=self.config.org,
                        bucket_id=bucket.id,
                        database=self.config.database,
                        retention_policy="autogen",
                        default=True,
                    )
                )
        except InfluxDBError as exc:
            raise StoreError(f"InfluxDB v2 bootstrap of bucket {bucket_name!r} failed: {exc}") from exc

    def _v2(self) -> Any:
        if self._v2_client is None:
            from influxdb_client.client.influxdb_client import InfluxDBClient

            if self.config.token is None or self.config.org is None:
                raise StoreAuthError("the v2 API needs JIESHUI_INFLUX_TOKEN and JIESHUI_INFLUX_ORG")
            self._v2_client = InfluxDBClient(
                url=self.config.url,
                token=self.config.token.get_secret_value(),
                org=self.config.org,
                timeout=int(self.config.timeout_s * 1000),
                verify_ssl=True,
                ssl_ca_cert=self.config.ca_file,  # None: the system's CAs
            )
        return self._v2_client

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()
        if self._v2_client is not None:
            self._v2_client.close()

    def __enter__(self) -> InfluxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------
    def write_body(self, body: bytes) -> None:
        """Write one request body of newline-separated line protocol (nanosecond times).

        Raises `PartialWriteError` when the server kept some lines and refused others, and the other
        `StoreError` types when it kept none.
        """
        if not body:
            return
        if self.config.api == "v1":
            params = {"db": self.config.database, "precision": "ns"}
            self._request("POST", "/write", params=params, content=body)
        else:
            self._write_v2(body)

    def _write_v2(self, body: bytes) -> None:
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        with self._v2_lock:
            if self._v2_write is None:
                self._v2_write = self._v2().write_api(write_options=SYNCHRONOUS)
        url = f"{self._where}/api/v2/write"
        try:
            self._v2_write.write(bucket=self.config.target, org=self.config.org, record=body)
        except ApiException as exc:
            if not exc.status:  # status 0: no answer; influxdb-client turns a TLS failure into this
                raise self._unreachable(exc, url) from exc
            response = httpx.Response(int(exc.status), content=(exc.body or "").encode())
            self._raise_for(response, url)
        # The client disables urllib3's retries, so a refused connection or a timeout comes out as
        # urllib3's own error (not an OSError); both are retried by the collector like v1's.
        except (OSError, TransportError) as exc:
            raise self._unreachable(exc, url) from exc

    def write(self, points: Iterable[Point], batch_points: int = DEFAULT_BATCH_POINTS) -> int:
        """Write points in batches of `batch_points` lines; return how many were sent."""
        sent = 0
        batch: list[str] = []
        for point in points:
            batch.append(point.to_line())
            if len(batch) >= batch_points:
                self.write_body("\n".join(batch).encode())
                sent += len(batch)
                batch.clear()
        if batch:
            self.write_body("\n".join(batch).encode())
            sent += len(batch)
        return sent

    # -- reads ----------------------------------------------------------------------------------
    def execute(self, influxql: str) -> list[dict[str, Any]]:
        """Run a statement that changes state (CREATE, ALTER, DROP, DELETE); return the raw results."""
        return self._query(influxql, method="POST")

    def query(self, influxql: str, params: Mapping[str, Any] | None = None) -> list[Series]:
        """Run an InfluxQL SELECT/SHOW and return every series of every statement's result.

        `params` binds `$name` placeholders server-side, so tag values never need quoting by hand.
        """
        series: list[Series] = []
        for result in self._query(influxql, params=params):
            series.extend(_series_from_json(raw) for raw in result.get("series", []))
        return series

    def _query(
        self, influxql: str, params: Mapping[str, Any] | None = None, method: str = "GET"
    ) -> list[dict[str, Any]]:
        args: dict[str, str] = {"q": influxql, "epoch": "ns", "db": self.config.database}
        if params:
            args["params"] = json.dumps(dict(params))
        if method == "GET":
            response = self._request("GET", "/query", params=args)
        else:
            response = self._request("POST", "/query", data=args)
        payload = response.json()
        if "error" in payload:
            raise QueryError(f"InfluxQL refused: {payload['error']}; query: {influxql}")
        results: list[dict[str, Any]] = payload.get("results", [])
        for result in results:
            error = result.get("error")
            if error is None:
                continue
            if "database not found" in error:
                raise DatabaseNotFoundError(
                    f"{self.config.target!r} does not exist ({error}); run the bootstrap to create it",
                    url=f"{self._where}/query",
                )
            if "authoriz" in error or "not authenticated" in error:
                raise StoreAuthError(f"InfluxDB refused the query: {error}", url=f"{self._where}/query")
            raise QueryError(f"InfluxQL failed: {error}; query: {influxql}")
        return results


def _duration_seconds(text: str) -> float:
    """Seconds in an InfluxQL duration such as `52w`, `365d` or `720h`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError) as exc:
        raise StoreError(f"retention {text!r} is not a duration like 52w, 365d or INF") from exc
