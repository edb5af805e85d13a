"""`jieshui evidence ...`: the evidence commands (docs/evidence.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """Add `evidence` and its actions to the top-level subparsers."""
    from jieshui.cli import _db_option, _influx_options, _site_option

    evidence = sub.add_parser("evidence", help="digests, checks, signatures (docs/evidence.md)")
    actions = evidence.add_subparsers(dest="action", required=True)

    digest = actions.add_parser(
        "digest",
        help="digest each settled day of each device's readings and chain it (run daily)",
        description="Append the digest of every day not digested yet, from each device's first reading "
        "(or its last digest) through --through (default: the last settled day, 8 days ago), to the SQL "
        "table evidence_digests.",
    )
    _site_option(digest)
    digest.add_argument("--community", action="append", help="only these communities (repeatable)")
    digest.add_argument("--through", type=dt.date.fromisoformat, default=None,
                        help="last day to digest (default: 8 days ago, Asia/Shanghai)")  # fmt: skip
    _influx_options(digest)
    _db_option(digest)
    digest.set_defaults(func=_cmd_digest)

    check = actions.add_parser(
        "check",
        help="recompute a year's digests from InfluxDB and name every day whose data changed",
        description="Exit 0 when every digested day of the year still matches InfluxDB and the chain of "
        "digests is intact; exit 1 naming each device and day that does not (edited, deleted or inserted "
        "points, an altered digest row).",
    )
    _site_option(check)
    check.add_argument("--community", required=True, help="community id")
    check.add_argument("--year", type=int, required=True, help="year (Asia/Shanghai calendar)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    _influx_options(check)
    _db_option(check)
    check.set_defaults(func=_cmd_check)

    from evidence.signing_cli import add_actions as add_signing_actions

    add_signing_actions(actions)


def _open(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from api.db import Database
    from jieshui.cli import _db_url, _influx_config, _load_site_or_exit
    from jieshui.settings import Settings
    from store.influx import InfluxStore

    site = _load_site_or_exit(args.site)
    return site, Database(_db_url(args)), InfluxStore(_influx_config(args, Settings()))


def _cmd_digest(args: argparse.Namespace) -> int:
    from evidence.jobs import record_digests, settled_through
    from jieshui.errors import StoreError
    from jieshui.inventory import SHANGHAI

    site, db, store = _open(args)
    known = [c.id for _, c in site.communities()]
    wanted = args.community or known
    unknown = [c for c in wanted if c not in known]
    if unknown:
        print(f"jieshui evidence digest: no community {', '.join(unknown)} in {args.site}", file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.UTC)
    last = settled_through(now.astimezone(SHANGHAI).date())
    through = min(args.through or last, last)  # a day the collector may still add to is never digested
    try:
        for community in wanted:
            added = record_digests(db, store, site, community, through, now)
            print(f"{community}: {sum(added.values())} device-days digested through {through} "
                  f"({', '.join(f'{d} {n}' for d, n in added.items())})")  # fmt: skip
    except StoreError as exc:
        print(f"jieshui evidence digest: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
        db.close()
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from evidence.jobs import check
    from jieshui.errors import StoreError

    site, db, store = _open(args)
    try:
        report = check(db, store, site, args.community, args.year)
    except KeyError:
        print(f"jieshui evidence check: no community {args.community!r} in {args.site}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"jieshui evidence check: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
        db.close()
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=1))
    else:
        days = sum(d.days_checked for d in report.devices)
        for f in report.findings:
            print(f"{report.community} {f.device} {f.day}: {f.kind}: {f.message}")
        verdict = "all match" if report.ok else f"{len(report.findings)} day(s) no longer match"
        print(f"{report.community} {report.year}: {days} device-days checked, {verdict}")
    return 0 if report.ok else 1
