"""`jieshui evidence keygen|sign|verify|keys ...` (evidence.signing, docs/evidence.md "Signatures").

An evaluator makes a key pair once (`keygen`; the private key stays with them, mode 0600, encrypted
when JIESHUI_SIGNING_PASSPHRASE is set or `--encrypt` asks for a passphrase), an admin registers the
public key (`keys add`, or the API), the evaluator signs the files the API served (`sign`: FILE.sig
beside FILE) and anyone checks a file against its signature and the registered keys (`verify`), from
the SQL database (JIESHUI_DB_URL / --db-url) or offline from an exported keys file (`keys export`, or
the list `GET /signing-keys` answers).

Exit status: 0 done (or verified), 1 the signature does not hold, 2 invalid input (a missing file, an
unusable key, a bad option).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line stays fast: modules load when an action runs
    from evidence.signing import Artifact

#: Exit status for invalid input (same as `jieshui.cli.EXIT_INVALID`).
EXIT_INVALID = 2
EXIT_NOT_VERIFIED = 1
PASSPHRASE_ENV = "JIESHUI_SIGNING_PASSPHRASE"  # noqa: S105 (a variable name)
SUFFIX_ARTIFACT: dict[str, Artifact] = {".pdf": "report_pdf", ".json": "verdict_json"}


class _Invalid(Exception):
    """Invalid input: the message goes to stderr and the command exits 2."""


def _env(name: str) -> str | None:
    return os.environ.get(f"JIESHUI_{name}")


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _Invalid(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _db(args: argparse.Namespace) -> Any:
    from api.db import Database
    from jieshui.cli import _db_url

    return Database(_db_url(args))


def _passphrase(prompt: str, confirm: bool = False) -> bytes:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode()
    if not sys.stdin.isatty():
        raise _Invalid(f"a passphrase is needed: set {PASSPHRASE_ENV} (no terminal to ask on)")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise _Invalid("the two passphrases differ")
    if not first:
        raise _Invalid("an empty passphrase")
    return first.encode()


# --- keygen, sign, verify ------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    from evidence.signing import b64, fingerprint, generate_key

    out = Path(args.out)
    public_out = out.with_suffix(".pub")
    if public_out == out:  # `--out k.pub`: the public key would be written over the private one
        raise _Invalid(
            f"{out} ends in .pub, where the public key goes: name the private key otherwise (k.pem)"
        )
    encrypt = args.encrypt or bool(os.environ.get(PASSPHRASE_ENV))
    passphrase = _passphrase("passphrase for the new key: ", confirm=True) if encrypt else None
    pem, public = generate_key(passphrase)
    try:
        # the private key is created readable by its owner only, and never over an existing file
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise _Invalid(f"{out} exists: not overwriting a key (move it away first)") from exc
    except OSError as exc:
        raise _Invalid(f"cannot write {out}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_out.write_text(b64(public) + "\n", encoding="ascii")
    fp = fingerprint(public)
    state = "encrypted" if passphrase else "NOT encrypted"
    print(f"private key: {out} (mode 0600, {state}): keep it secret")
    print(f"public key:  {b64(public)} (also in {public_out})")
    print(f"fingerprint: {fp}")
    signer = args.signer or "NAME"
    hint = f'jieshui evidence keys add --signer "{signer}" --public-key {public_out}'
    print(f"register it: {hint}", file=sys.stderr)
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from evidence.signing import (
        SigningKeyError,
        document_text,
        fingerprint,
        is_encrypted,
        load_private_key,
        raw_public_key,
        sign,
        verdict_scope,
    )

    path = Path(args.file)
    data = _read(path, "the file to sign")
    artifact: Artifact | None = args.artifact or SUFFIX_ARTIFACT.get(path.suffix.lower())
    if artifact is None:
        raise _Invalid(f"{path}: say what it is with --artifact verdict_json|report_pdf")
    community, year = args.community, args.year
    if artifact == "verdict_json":
        scope = verdict_scope(data)
        if scope is not None:
            if (community or scope[0], year or scope[1]) != scope:
                raise _Invalid(
                    f"{path} is the verdict of {scope[0]} {scope[1]}, not {community or scope[0]} "
                    f"{year or scope[1]}"
                )
            community, year = scope
    if not community or not year:
        raise _Invalid(f"{path}: --community and --year are needed (what the {artifact} is of)")
    if not args.key:
        raise _Invalid("--key (or JIESHUI_SIGNING_KEY) is needed: the private key file")
    if not args.signer:
        raise _Invalid("--signer (or JIESHUI_SIGNER) is needed: the name the key is registered to")
    pem = _read(args.key, "the private key")
    passphrase = _passphrase(f"passphrase for {args.key}: ") if is_encrypted(pem) else None
    try:
        key = load_private_key(pem, passphrase)
    except SigningKeyError as exc:
        raise _Invalid(f"{args.key}: {exc}") from exc
    try:
        document = sign(data, key, artifact=artifact, community=community, year=year, signer=args.signer,
                        signed_at=dt.datetime.now(dt.UTC))  # fmt: skip
    except ValueError as exc:  # pydantic's: a community, year or signer a signature cannot carry
        raise _Invalid(f"cannot sign: {exc}") from exc
    out = Path(args.out) if args.out else path.with_name(path.name + ".sig")
    out.write_text(document_text(document), encoding="utf-8")
    print(
        f"wrote {out}: {artifact} of {community} {year}, sha256 {document.sha256}, signed by {args.signer} "
        f"({fingerprint(raw_public_key(key))}) at {document.signed_at}"
    )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from evidence.signing import SignatureFailure, SigningKeyError, format_time, parse_document, verify
    from evidence.signing_keys import all_keys, find_recorded, load_keys_file, registered

    path = Path(args.file)
    sig_path = Path(args.sig) if args.sig else path.with_name(path.name + ".sig")
    data = _read(path, "the signed file")
    sig_text = _read(sig_path, "the signature")
    db = None if args.keys else _db(args)
    try:
        try:
            if db is None:
                keys = load_keys_file(_read(args.keys, "the keys file").decode("utf-8", errors="replace"))
                source = args.keys
            else:
                with db.session() as s:
                    keys = registered(all_keys(s))
                source = repr(db.engine.url)
        except SigningKeyError as exc:
            raise _Invalid(f"registered keys ({args.keys or 'database'}): {exc}") from exc
        try:
            document = parse_document(sig_text)
            verified = verify(data, document, keys)
        except SignatureFailure as exc:
            print(f"{path}: NOT VERIFIED ({exc.code}): {exc}", file=sys.stderr)
            print(f"  signature {sig_path}; {len(keys)} registered key(s) from {source}", file=sys.stderr)
            return EXIT_NOT_VERIFIED
        print(f"{path}: {verified.describe()}")
        if db is not None:  # the API's record of it, if it was uploaded: a time the signer did not write
            with db.session() as s:
                row = find_recorded(s, document)
                if row is not None:
                    print(f"  recorded by the API on {format_time(row.recorded_at)} (signature #{row.id})")
    finally:
        if db is not None:
            db.close()
    return 0


# --- keys ---------------------------------------------------------------------------------------


def _public_key_text(value: str) -> str:
    """--public-key: a file holding the key, or the key itself (base64 or PEM)."""
    candidate = Path(value)
    if len(value) < 4096 and candidate.is_file():
        return _read(candidate, "the public key").decode("utf-8", errors="replace")
    return value


def _cmd_keys(args: argparse.Namespace) -> int:
    from api.auth import audit
    from evidence.signing import SigningKeyError, format_time, short_fingerprint
    from evidence.signing_keys import KeyExists, all_keys, export_keys, find, register, revoke

    now = dt.datetime.now(dt.UTC)
    db = _db(args)
    try:
        with db.session() as s:
            if args.keys_action == "add":
                signer = args.signer.strip()
                if not signer:
                    raise _Invalid("--signer is empty")
                try:
                    row = register(s, signer, _public_key_text(args.public_key), "cli", now)
                except KeyExists as exc:
                    raise _Invalid(str(exc)) from exc
                except SigningKeyError as exc:
                    raise _Invalid(f"--public-key: {exc}") from exc
                audit(s, "cli", "admin", "signing_key.register", f"signing-key/{row.fingerprint}", now,
                      signer=row.signer)  # fmt: skip
                print(f"registered {row.fingerprint} for {row.signer}")
            elif args.keys_action == "list":
                for k in all_keys(s):
                    state = f"revoked {format_time(k.revoked_at)}" if k.revoked_at else "active"
                    print(f"{k.fingerprint}\t{short_fingerprint(k.fingerprint)}\t{k.signer}\t"
                          f"registered {format_time(k.registered_at)}\t{state}")  # fmt: skip
            elif args.keys_action == "revoke":
                found = find(s, args.fingerprint)
                if found is None:
                    raise _Invalid(
                        f"no key {args.fingerprint!r} (give the fingerprint, or 16+ of its first digits)"
                    )
                row = found
                if revoke(s, row, now):
                    audit(s, "cli", "admin", "signing_key.revoke", f"signing-key/{row.fingerprint}", now,
                          signer=row.signer)  # fmt: skip
                    print(f"revoked {row.fingerprint} ({row.signer}) on {format_time(now)}")
                elif row.revoked_at is not None:
                    when = format_time(row.revoked_at)
                    print(f"{row.fingerprint} ({row.signer}) was revoked already, on {when}")
            else:
                text = export_keys(all_keys(s), now)
                if args.out == "-":
                    sys.stdout.write(text)
                else:
                    Path(args.out).write_text(text, encoding="utf-8")
                    print(f"wrote {args.out}: {len(all_keys(s))} key(s)")
    finally:
        db.close()
    return 0


def _guarded(func: Any) -> Any:
    """Run an action; invalid input is one line on stderr and exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            status: int = func(args)
        except _Invalid as exc:
            print(f"jieshui evidence {args.action}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        return status

    return run


def add_actions(actions: Any) -> None:
    """Add the signing actions to `jieshui evidence`."""
    from jieshui.cli import _db_option  # the one --db-url option (called once the CLI module is loaded)

    kg = actions.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing verdicts and reports",
        description=f"Write the private key (PKCS#8 PEM, mode 0600; encrypted when {PASSPHRASE_ENV} is set "
        "or with --encrypt) to --out and the public key (base64) beside it (.pub); print the public key "
        "and its fingerprint, to be registered by an admin.",
    )
    kg.add_argument("--out", required=True, metavar="KEY.pem", help="where to write the private key")
    kg.add_argument("--signer", default=_env("SIGNER"), help="whose key it is (JIESHUI_SIGNER)")
    kg.add_argument("--encrypt", action="store_true", help=f"ask for a passphrase (or set {PASSPHRASE_ENV})")
    kg.set_defaults(func=_guarded(_cmd_keygen))

    sg = actions.add_parser(
        "sign",
        help="sign a verdict JSON or a report PDF: FILE.sig beside FILE",
        description="Sign the exact bytes of FILE (as the API served it) with your private key; the "
        "signature also binds what it is (--artifact, from the suffix by default), the community and year "
        "(taken from a verdict JSON), your name and the time.",
    )
    sg.add_argument("file", metavar="FILE")
    sg.add_argument("--key", default=_env("SIGNING_KEY"), help="private key file (JIESHUI_SIGNING_KEY)")
    sg.add_argument("--signer", default=_env("SIGNER"), help="your name as registered (JIESHUI_SIGNER)")
    sg.add_argument("--community", default=None, help="community id (read from a verdict JSON)")
    sg.add_argument("--year", type=int, default=None, help="reporting year (read from a verdict JSON)")
    sg.add_argument("--artifact", choices=["verdict_json", "report_pdf"], default=None,
                    help="what FILE is (default: .json verdict_json, .pdf report_pdf)")  # fmt: skip
    sg.add_argument("--out", default=None, metavar="FILE.sig", help="where to write the signature")
    sg.set_defaults(func=_guarded(_cmd_sign))

    vf = actions.add_parser(
        "verify",
        help="check FILE against its signature and the registered keys",
        description="Exit 0 and say who signed what and when, or exit 1 and say what does not hold: the "
        "file changed, the signature document was altered, the key is not registered or was revoked.",
    )
    vf.add_argument("file", metavar="FILE")
    vf.add_argument("--sig", default=None, metavar="FILE.sig", help="the signature (default FILE.sig)")
    vf.add_argument("--keys", default=None, metavar="KEYS.json",
                    help="registered keys from this file (keys export, or GET /signing-keys) instead of "
                    "the database")  # fmt: skip
    _db_option(vf)
    vf.set_defaults(func=_guarded(_cmd_verify))

    keys = actions.add_parser("keys", help="register, list, revoke or export signing keys (SQL)")
    key_actions = keys.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    ka = key_actions.add_parser("add", help="register a public key under a signer's name")
    ka.add_argument("--signer", required=True, help="who signs with it (name, organisation)")
    ka.add_argument("--public-key", required=True, metavar="FILE|BASE64", help="a file, base64 or PEM")
    kl = key_actions.add_parser("list", help="list the keys, revoked ones too")
    kr = key_actions.add_parser("revoke", help="refuse the key's signatures from now on")
    kr.add_argument("fingerprint", metavar="FINGERPRINT", help="the fingerprint, or 16+ of its first digits")
    ke = key_actions.add_parser("export", help="write the keys file for offline verification")
    ke.add_argument("--out", required=True, metavar="KEYS.json", help="where to write it ('-': stdout)")
    for p in (ka, kl, kr, ke):
        _db_option(p)
        p.set_defaults(func=_guarded(_cmd_keys))
