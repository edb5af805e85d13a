"""One error type per boundary, each with a message a user can act on.

Every error Jieshui raises on purpose derives from `JieshuiError`; callers at a boundary (the command
line, a poll loop, an API handler) catch that base and never a bare `Exception`.
"""

from __future__ import annotations


class JieshuiError(Exception):
    """Base of every error Jieshui raises on purpose."""


class InventoryError(JieshuiError):
    """A site inventory file is invalid; `problems` lists every `FILE:LINE: path: message` found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ProfileError(JieshuiError):
    """A device profile is missing or invalid."""


class DeviceReadError(JieshuiError):
    """A device could not be read, or what it answered could not be decoded."""

    def __init__(self, device: str, address: str, message: str) -> None:
        self.device = device
        self.address = address
        super().__init__(f"device {device!r} at {address}: {message}")


class ServiceError(JieshuiError):
    """A local server (influxd, mosquitto) could not be started or stopped."""


class StoreError(JieshuiError):
    """InfluxDB refused or failed a request. `retryable` says whether the same request may succeed later."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        self.status = status
        self.url = url
        where = f" ({url})" if url else ""
        super().__init__(f"{message}{where}")


class StoreAuthError(StoreError):
    """The credentials (username/password or token) were refused or lack the needed permission."""


class DatabaseNotFoundError(StoreError):
    """The database (v1) or bucket (v2) does not exist; bootstrap creates it."""


class StoreTimeoutError(StoreError):
    """InfluxDB did not answer in time; the request may or may not have been applied."""

    retryable = True


class StoreUnavailableError(StoreError):
    """InfluxDB could not be reached or answered 5xx; the request was not applied and can be retried."""

    retryable = True


class PartialWriteError(StoreError):
    """InfluxDB wrote some points of a batch and rejected others (field type conflict, bad point...).

    The accepted points are stored; `rejected` holds the server's reason so the caller can dead-letter
    the rest. Retrying the whole batch is safe (points are idempotent) but will be refused again.
    """

    def __init__(self, message: str, *, rejected: str, status: int | None = None, url: str = "") -> None:
        self.rejected = rejected
        super().__init__(message, status=status, url=url)


class QueryError(StoreError):
    """An InfluxQL query was refused (syntax error, unknown function...)."""
