"""A private CA and a server certificate for 127.0.0.1 and localhost, made with the `openssl` CLI.

Tests of TLS need what operators have with a self-signed or private CA: a CA certificate to give
Jieshui (`JIESHUI_MQTT_CA_FILE`, `JIESHUI_INFLUX_CA_FILE`) and a server certificate signed by it for
mosquitto and influxd. The certificates carry the extensions strict verifiers ask for (CA basic
constraints and key usage, subject and authority key ids, serverAuth, the subjectAltName with both
the DNS name and the IP address), so Python's ssl, OpenSSL in the mosquitto clients, curl and Go's
crypto/tls (influxd, the influx CLI) all verify them the same way. EC P-256 keys: fast to make.

The `openssl` CLI (Debian's openssl package, on every machine that runs the tests) rather than the
`cryptography` package: it is not a dependency of the project, and nothing else needs it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA certificate clients trust, the server's certificate (signed by the CA) and key."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @property
    def server(self) -> tuple[Path, Path]:
        """(certificate, key), as `MosquittoServer(tls=...)` and `InfluxServer(tls=...)` take them."""
        return self.server_cert, self.server_key


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    assert binary, "openssl not found: apt-get install openssl"
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed:\n{result.stderr}"


def make_ca(directory: Path, name: str = "Jieshui Test CA") -> tuple[Path, Path]:
    """A self-signed CA certificate and its key in `directory`: (ca.pem, ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", *_EC, "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    return cert, key


def make_tls_files(
    directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), ca_name: str = "Jieshui Test CA"
) -> TlsFiles:
    """A new CA and a server certificate it signed for `hosts` (names and IP addresses), in `directory`."""
    ca_cert, ca_key = make_ca(directory, ca_name)
    server_cert, server_key = directory / "server.pem", directory / "server.key"
    csr = directory / "server.csr"
    _openssl("req", "-new", *_EC, "-keyout", str(server_key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    alt = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    extensions = directory / "server.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
        f"subjectAltName={alt}\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(extensions), "-out", str(server_cert),
    )  # fmt: skip
    return TlsFiles(ca_cert, ca_key, server_cert, server_key)
