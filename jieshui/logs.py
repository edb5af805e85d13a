"""The one logging setup: plain lines for a terminal, or one JSON object per line for log shippers.

Secrets never reach a log line: `configure_logging` installs a log record factory that masks them in
every record of the process, whichever logger made it and whichever handler writes it (uvicorn's access
log has handlers of its own): credentials in URLs (`mqtt://user:***@host`), API keys' secrets
(`jsk_<id>_***`), bearer tokens (`jst_***`), the secrets of display pages' links (`jsd_***`), HTTP
credentials (`Basic ***`, `Bearer ***`), secrets in query strings and forms (`p=***`,
`client_secret=***`), and the values of the secret settings in the
environment (InfluxDB password and token, the MQTT device secret and the collector's password, the
passwords in JIESHUI_*_URL). The message, its arguments and a traceback's text are masked, so a
secret inside an exception's message is masked too (tests/security/test_secrets_in_logs.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"

#: What a secret looks like wherever it turns up in a log line, and what is left of it.
PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # credentials in a URL: scheme://user:password@host (the password may hold an escaped or bare @)
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^/?#\s]*(?=@)"), rf"\g<1>{MASK}"),
    # an API key (its id is public) and a bearer token (jst_ and the secret alone)
    (re.compile(r"\b(jsk_[0-9A-Za-z]{1,16}_)[A-Za-z0-9_-]+"), rf"\g<1>{MASK}"),
    (re.compile(r"\bjst_[A-Za-z0-9_-]+"), f"jst_{MASK}"),
    # the secret of a community display page's link (/display/jsd_...: uvicorn's access log has it)
    (re.compile(r"\bjsd_[A-Za-z0-9_-]+"), f"jsd_{MASK}"),
    # HTTP credentials (Authorization: Basic / Bearer / Token ...)
    (re.compile(r"\b(Basic|Bearer|Token)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1>\g<2>{MASK}"),
    # secrets in a query string or a form (InfluxDB 1.x takes u= and p=; OAuth2 forms client_secret=)
    (
        re.compile(
            r"(?i)(?<![A-Za-z0-9_])((?:p|password|passwd|pwd|secret|client_secret|token|access_token|"
            r"api_key|apikey)=)[^&\s\"'<>]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # ... and in JSON
    (
        re.compile(
            r'(?i)("(?:password|passwd|secret|client_secret|token|access_token|api_key)"\s*:\s*")[^"]+'
        ),
        rf"\g<1>{MASK}",
    ),
]

#: Environment variables whose values are secrets, masked wherever they appear...
SECRET_VARIABLES = (
    "JIESHUI_INFLUX_PASSWORD",
    "JIESHUI_INFLUX_TOKEN",
    "JIESHUI_MQTT_DEVICE_SECRET",
    "JIESHUI_MQTT_COLLECTOR_PASSWORD",
)
#: ... and URLs whose password is.
URL_VARIABLES = ("JIESHUI_MQTT_URL", "JIESHUI_INFLUX_URL", "JIESHUI_DB_URL")
#: Shorter values are not masked by value (they would mask ordinary words); the patterns still apply.
MIN_SECRET_LENGTH = 8

_secrets: set[str] = set()


def add_secret(value: str | None) -> None:
    """Mask `value` (and its URL-encoded form) in every log line from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))


def secrets_from_environment(environ: Iterable[tuple[str, str]] | None = None) -> set[str]:
    """The secret values the environment holds (SECRET_VARIABLES, the passwords of URL_VARIABLES)."""
    env = dict(environ if environ is not None else os.environ.items())
    found = {env[name] for name in SECRET_VARIABLES if env.get(name)}
    for name in URL_VARIABLES:
        try:
            password = urlsplit(env.get(name, "")).password
        except ValueError:
            continue
        if password:
            found.add(unquote(password))
    return found


def redact(text: str) -> str:
    """`text` with every secret it holds masked."""
    for value in sorted(_secrets, key=len, reverse=True):  # a longer secret first: it may hold a shorter
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, bytes):
        masked = redact(arg.decode("utf-8", "replace"))
        return arg if masked == arg.decode("utf-8", "replace") else masked.encode()
    return arg


class _Redacting:
    """A log record factory: the record the previous factory makes, with its secrets masked."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.make(*args, **kwargs)
        with contextlib.suppress(Exception):  # a record that cannot be masked is kept as it is, not lost
            _redact_record(record)
        return record


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    # An argument that is no string (an exception, a URL object...) is only seen formatted: if the
    # message then holds a secret, the record carries the masked message instead (its own arguments
    # are kept for formatters that read them, as uvicorn's access log does, when nothing is masked).
    if record.args and not all(isinstance(a, str | int | float | bool | None) for a in _args(record)):
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _args(record: logging.LogRecord) -> Iterable[object]:
    if isinstance(record.args, dict):
        return record.args.values()
    return record.args or ()


def install_redaction() -> None:
    """Mask secrets in every log record of this process from now on (once; safe to call again)."""
    for value in secrets_from_environment():
        add_secret(value)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _Redacting):
        logging.setLogRecordFactory(_Redacting(factory))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("device", "community", "reason"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Send log records to stderr, as text or JSON lines, secrets masked; safe to call more than once."""
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Every HTTP request at INFO would bury what matters; pymodbus logs each retry at WARNING and
    # the collector reports the same faults once, with the device named.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
