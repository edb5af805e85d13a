"""TLS for Jieshui's clients: trust a private CA, and say precisely why a server was not trusted.

The collector, the simulators, the API and the store talk to mosquitto (`mqtts://`) and InfluxDB
(`https://`) that often carry a certificate from a private or self-signed CA. Operators give that CA
in a file (`JIESHUI_MQTT_CA_FILE`, `JIESHUI_INFLUX_CA_FILE`); it then replaces the system's CAs for
that connection, and certificates are always verified (there is no switch to turn verification off).
When a handshake fails verification, `untrusted_message` turns the buried `ssl` error into one line
that names the server, the reason and the variable to set.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from jieshui.errors import JieshuiError

#: OpenSSL's verify codes for a certificate that is valid but names another host or address.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def client_context(ca_file: str | None, variable: str) -> ssl.SSLContext:
    """A verifying client context: trusting only `ca_file` when given, else the system's CAs.

    Raises JieshuiError naming `variable` when the file cannot be read or holds no certificate.
    """
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a file without a PEM certificate
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise JieshuiError(f"{variable}: cannot load a CA certificate from {ca_file!r}: {reason}") from exc


def server_cert_context(cert_file: str | Path) -> ssl.SSLContext:
    """A client context that trusts exactly one server certificate (with or without its CA).

    For readiness probes of the servers we start ourselves: the certificate itself is the trust
    anchor (OpenSSL's partial-chain flag), so the probe verifies without knowing which CA signed it.
    Pinned to that one certificate, the probe does not also ask it to name the address it dials (a
    test may give a server a certificate for another host on purpose).
    """
    context = ssl.create_default_context(cafile=str(cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


def find_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind `exc` (httpx, urllib3 and paho wrap it), if any."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
    return None


def untrusted_message(where: str, error: ssl.SSLCertVerificationError | str, variable: str,
                      ca_file: str | None) -> str:  # fmt: skip
    """One line on why the certificate of `where` (a URL or host:port) was refused, and what to do."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or str(error)
        if error.verify_code in _NAME_MISMATCH:
            return (
                f"the TLS certificate of {where} does not name that host ({reason}): connect with a "
                "name or address the certificate lists in its subjectAltName"
            )
    else:
        reason = error
    trusted = f"{variable}={ca_file}" if ca_file else "the system's CAs"
    return (
        f"the TLS certificate of {where} is not trusted ({reason}; checked against {trusted}): "
        f"set {variable} to the file of the CA certificate that signed it"
    )
