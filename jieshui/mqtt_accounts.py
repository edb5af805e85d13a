"""MQTT broker accounts from the site inventory: one per MQTT device, one for the collector.

Meters publish to mosquitto and the collector subscribes (ARCHITECTURE.md, data flow). So that a device
can publish only its own readings, every MQTT device of the inventory gets its own account,
`<community>.<device>` (a dot never appears in a slug, and community ids are unique across a site, so
the name is unambiguous), allowed to write exactly `jieshui/<district>/<community>/<device>/telemetry`
and `.../status`; the collector's account may read `jieshui/#` and write nothing. This module writes
mosquitto's password file (`$7$` PBKDF2-SHA512, as `mosquitto_passwd` writes it, so the stack needs no
extra tool) and its ACL file. Device passwords are derived from one site secret (HMAC-SHA256 of the
username), so nothing per device is stored and `jieshui mqtt accounts --print-passwords` prints them
again for installers at any time. docker-compose runs it as the one-shot `mqtt-accounts` service
(docs/deploy.md).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jieshui.errors import InventoryError, JieshuiError

if TYPE_CHECKING:  # the inventory (pydantic, the profiles) loads when used: `jieshui --help` stays fast
    from jieshui.inventory import Site

#: Exit status for invalid input (same as `jieshui.cli.EXIT_INVALID`).
EXIT_INVALID = 2

DEVICE_SECRET_ENV = "JIESHUI_MQTT_DEVICE_SECRET"  # noqa: S105 (a variable name)
COLLECTOR_USER_ENV = "JIESHUI_MQTT_COLLECTOR_USER"
COLLECTOR_PASSWORD_ENV = "JIESHUI_MQTT_COLLECTOR_PASSWORD"  # noqa: S105 (a variable name)
OWNER_ENV = "JIESHUI_MQTT_ACCOUNTS_OWNER"
DEFAULT_COLLECTOR_USER = "jieshui-collector"

#: What the collector may read besides the devices' topics: the broker's uptime, which the compose
#: healthcheck reads with the collector's account.
BROKER_UPTIME_TOPIC = "$SYS/broker/uptime"

#: Characters of a derived device password: 24 base32 characters are 120 bits, typeable by installers.
DEVICE_PASSWORD_LENGTH = 24
#: Secrets shorter than this are refused (`openssl rand -hex 32` gives 64 characters).
MIN_SECRET_LENGTH = 16
#: The derivation is versioned so that a future scheme cannot collide with this one.
_DERIVATION_LABEL = b"jieshui-mqtt-device/1:"
#: mosquitto_passwd's defaults for `$7$` (PBKDF2-HMAC-SHA512): 101 iterations, a 12-byte salt. Every
#: password here is random and long, so more iterations would cost the broker CPU per CONNECT and buy
#: nothing against guessing.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
#: The .env.example placeholders; refused so a stack never runs with a published secret.
_PLACEHOLDER = "change-me"
_COLLECTOR_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The collector's password goes unescaped into JIESHUI_MQTT_URL (mqtt://user:password@host), so it must
# be made of characters a URL's userinfo carries as they are.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


class MqttAccountsError(JieshuiError):
    """A secret, a user name or an output location for the broker's accounts is not usable."""


@dataclass(frozen=True)
class DeviceAccount:
    """The broker account of one MQTT device and the two topics it may publish on."""

    district: str
    community: str
    device: str
    profile: str

    @property
    def username(self) -> str:
        """`<community>.<device>`."""
        return device_username(self.community, self.device)

    @property
    def telemetry_topic(self) -> str:
        """Where the device publishes its readings."""
        return f"jieshui/{self.district}/{self.community}/{self.device}/telemetry"

    @property
    def status_topic(self) -> str:
        """Where the device keeps its retained status (and the broker publishes its last will)."""
        return f"jieshui/{self.district}/{self.community}/{self.device}/status"


def device_username(community: str, device: str) -> str:
    """The broker user name of a device: `<community>.<device>` (ids are slugs, which have no dot)."""
    return f"{community}.{device}"


def device_password(device_secret: str, username: str) -> str:
    """The device's password: HMAC-SHA256(secret, label + username), base32, lower case, 24 characters.

    Deterministic, so an operator re-derives any device's password from the one secret; distinct per
    user name; changing the secret changes every device's password.
    """
    digest = hmac.new(device_secret.encode(), _DERIVATION_LABEL + username.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:DEVICE_PASSWORD_LENGTH]


def device_accounts(site: Site) -> list[DeviceAccount]:
    """Every MQTT device of the site, in inventory order."""
    from jieshui.inventory import Mqtt

    return [
        DeviceAccount(district.id, community.id, device.id, device.profile)
        for district, community in site.communities()
        for _, device in community.devices()
        if isinstance(device.connection, Mqtt)
    ]


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`, as mosquitto_passwd writes."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a `$7$` hash (ours or mosquitto_passwd's); False for other formats."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(actual, expected)


def acl_text(devices: Sequence[DeviceAccount], collector_user: str) -> str:
    """Mosquitto 2's acl_file: the collector reads `jieshui/#`, each device writes its two topics.

    A client may do only what its `user` block grants: anything else it publishes is dropped, and a
    subscription to anything else is answered "not authorised". Nothing is granted to anonymous clients
    (no lines before the first `user`), and allow_anonymous is false anyway.
    """
    lines = [
        "# Generated by `jieshui mqtt accounts` from the site inventory; do not edit: it is rewritten",
        "# on every start of the stack (docs/deploy.md).",
        "",
        "# The collector reads every device's topics (shared subscriptions included) and writes nothing;",
        "# it may also read the broker's uptime, which the compose healthcheck reads with its account.",
        f"user {collector_user}",
        "topic read jieshui/#",
        f"topic read {BROKER_UPTIME_TOPIC}",
    ]
    for d in devices:
        lines += [
            "",
            f"# {d.district} / {d.community} / {d.device} ({d.profile})",
            f"user {d.username}",
            f"topic write {d.telemetry_topic}",
            f"topic write {d.status_topic}",
        ]
    return "\n".join(lines) + "\n"


def passwd_text(credentials: Sequence[tuple[str, str]]) -> str:
    """Mosquitto's password_file, one `user:$7$...` line per (username, password), freshly salted."""
    return "".join(f"{user}:{hash_password(password)}\n" for user, password in credentials)


def check_secret(name: str, value: str | None, how: str) -> str:
    """Return a usable secret, or raise naming the variable, what is wrong and how to make one."""
    if not value:
        raise MqttAccountsError(f"{name} is not set: {how}")
    if _PLACEHOLDER in value.lower():
        raise MqttAccountsError(f"{name} is still the .env.example placeholder: {how}")
    if len(value) < MIN_SECRET_LENGTH:
        raise MqttAccountsError(
            f"{name} is {len(value)} characters long; it must have at least {MIN_SECRET_LENGTH}: {how}"
        )
    return value


def check_collector(devices: Sequence[DeviceAccount], user: str, password: str | None) -> tuple[str, str]:
    """Validate the collector's account; raise naming the problem."""
    if not _COLLECTOR_USER.match(user):
        raise MqttAccountsError(
            f"{COLLECTOR_USER_ENV} {user!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if any(d.username == user for d in devices):
        raise MqttAccountsError(f"{COLLECTOR_USER_ENV} {user!r} is the user name of a device; choose another")
    password = check_secret(
        COLLECTOR_PASSWORD_ENV, password, "set it in .env or pass --collector-password (openssl rand -hex 32)"
    )
    if not _URL_SAFE.match(password):
        raise MqttAccountsError(
            f"{COLLECTOR_PASSWORD_ENV} may contain only letters, digits and . _ ~ - (it is written into "
            "JIESHUI_MQTT_URL unescaped); generate one with: openssl rand -hex 32"
        )
    return user, password


def parse_owner(text: str) -> tuple[int, int]:
    """`UID:GID` or `UID` (numeric) -> (uid, gid); gid defaults to uid."""
    uid, _, gid = text.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise MqttAccountsError(f"owner {text!r} must be numeric UID:GID, e.g. 1883:1883")
    return int(uid), int(gid or uid)


def _write_private(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    # Mode 0600 and, given an owner, that owner: mosquitto 2 warns about (and later versions refuse) a
    # password or ACL file other users can read. Written beside the target and renamed over it, so a
    # reader sees the old file or the new one, never half of one.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)  # a stale tmp file keeps its old mode through O_CREAT
    if owner is not None:
        try:
            os.chown(tmp, *owner)
        except PermissionError as exc:
            tmp.unlink()
            raise MqttAccountsError(
                f"cannot give {path} to {owner[0]}:{owner[1]}: only root may (docker-compose runs "
                "mqtt-accounts as user 0 for this)"
            ) from exc
    os.replace(tmp, path)


def write_accounts(
    site: Site,
    out_dir: Path,
    *,
    device_secret: str,
    collector_user: str,
    collector_password: str,
    owner: tuple[int, int] | None = None,
) -> tuple[Path, Path]:
    """Write `out_dir/passwd` and `out_dir/acl` for the site; return their paths.

    The ACL is the same bytes for the same inputs; the password file is salted afresh each time (the
    passwords it accepts are the same).
    """
    devices = device_accounts(site)
    user, password = check_collector(devices, collector_user, collector_password)
    out_dir.mkdir(parents=True, exist_ok=True)
    credentials = [(user, password)] + [
        (d.username, device_password(device_secret, d.username)) for d in devices
    ]
    passwd_path, acl_path = out_dir / "passwd", out_dir / "acl"
    _write_private(passwd_path, passwd_text(credentials), owner)
    _write_private(acl_path, acl_text(devices, user), owner)
    return passwd_path, acl_path


def passwords_csv(devices: Sequence[DeviceAccount], device_secret: str) -> str:
    """`device,username,password,telemetry_topic` rows for installers (device as `community/device`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device", "username", "password", "telemetry_topic"])
    for d in devices:
        writer.writerow(
            [
                f"{d.community}/{d.device}",
                d.username,
                device_password(device_secret, d.username),
                d.telemetry_topic,
            ]
        )
    return out.getvalue()


def _cmd_accounts(args: argparse.Namespace) -> int:
    from jieshui.inventory import load_site

    prog = "jieshui mqtt accounts"
    if not args.out and not args.print_passwords:
        print(f"{prog}: give --out DIR (write passwd and acl), --print-passwords, or both", file=sys.stderr)
        return EXIT_INVALID
    try:
        site = load_site(args.site)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    devices = device_accounts(site)
    try:
        secret = check_secret(
            DEVICE_SECRET_ENV,
            args.device_secret or os.environ.get(DEVICE_SECRET_ENV),
            "set it in .env or pass --device-secret (generate one with: openssl rand -hex 32)",
        )
        if args.out:
            owner_text = args.owner or os.environ.get(OWNER_ENV)
            passwd, acl = write_accounts(
                site,
                Path(args.out),
                device_secret=secret,
                collector_user=args.collector_user
                or os.environ.get(COLLECTOR_USER_ENV)
                or DEFAULT_COLLECTOR_USER,
                collector_password=args.collector_password or os.environ.get(COLLECTOR_PASSWORD_ENV) or "",
                owner=parse_owner(owner_text) if owner_text else None,
            )
            print(f"{prog}: wrote {passwd} ({len(devices) + 1} accounts) and {acl}", file=sys.stderr)
    except MqttAccountsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"{prog}: cannot write to {args.out}: {exc}", file=sys.stderr)
        return 1
    if args.print_passwords:
        sys.stdout.write(passwords_csv(devices, secret))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `mqtt accounts ...` to the `jieshui` command's subcommands."""
    mqtt = sub.add_parser(
        "mqtt",
        help="MQTT broker accounts: a password file and an ACL for mosquitto from the site inventory",
        description="Manage the broker's accounts: every MQTT device of the inventory may publish only "
        "its own topics; the collector may only read (docs/deploy.md).",
    )
    actions = mqtt.add_subparsers(dest="action", required=True, metavar="ACTION")
    accounts = actions.add_parser(
        "accounts",
        help="write mosquitto's passwd and acl files, or print the devices' passwords",
        description="Write DIR/passwd ($7$ PBKDF2-SHA512, mode 0600) and DIR/acl for every MQTT device of "
        "the inventory plus the collector; --print-passwords prints device,username,password,telemetry_topic "
        "as CSV for installers. Device passwords are derived from the device secret, so they can be printed "
        "again at any time. Secrets come from JIESHUI_MQTT_DEVICE_SECRET and JIESHUI_MQTT_COLLECTOR_PASSWORD "
        "(flags override them, but are visible to other users in the process list).",
    )
    site = os.environ.get("JIESHUI_SITE")
    accounts.add_argument("--site", required=site is None, default=site, help="inventory YAML file")
    accounts.add_argument("--out", default=None, metavar="DIR", help="where to write passwd and acl")
    accounts.add_argument(
        "--device-secret",
        default=None,
        help=f"secret the device passwords derive from (default {DEVICE_SECRET_ENV})",
    )
    accounts.add_argument(
        "--collector-user",
        default=None,
        help=f"the collector's user name (default {COLLECTOR_USER_ENV}, else {DEFAULT_COLLECTOR_USER})",
    )
    accounts.add_argument(
        "--collector-password",
        default=None,
        help=f"the collector's password (default {COLLECTOR_PASSWORD_ENV})",
    )
    accounts.add_argument(
        "--owner",
        default=None,
        metavar="UID:GID",
        help=f"give the files to this owner, e.g. mosquitto's 1883:1883 (needs root; default {OWNER_ENV})",
    )
    accounts.add_argument(
        "--print-passwords", action="store_true", help="print every device's account as CSV on stdout"
    )
    accounts.set_defaults(func=_cmd_accounts)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m jieshui.mqtt_accounts accounts ...`: the same as `jieshui mqtt accounts ...`."""
    parser = argparse.ArgumentParser(prog="jieshui")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser(sub)
    args = parser.parse_args(["mqtt", *(sys.argv[1:] if argv is None else argv)])
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
