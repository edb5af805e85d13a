"""The `jieshui` command: one entry point, one subcommand per job (check, demo, ...).

Options follow one rule (ARCHITECTURE.md): a flag wins over its `JIESHUI_*` environment variable,
which wins over the default. Subcommands import their modules lazily so `jieshui --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from evidence.cli import add_parser as add_evidence_parser
from jieshui import __version__
from jieshui.errors import InventoryError, JieshuiError, ProfileError
from jieshui.mqtt_accounts import add_parser as add_mqtt_parser

#: Exit status for invalid input (an inventory, a configuration): the caller must fix the input.
EXIT_INVALID = 2


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"JIESHUI_{name}", default)


def _cmd_check(args: argparse.Namespace) -> int:
    from jieshui.inventory import load_site

    try:
        site = load_site(args.site)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.site}: ok: {site.summary()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from jieshui.demo import run_demo

    return run_demo(
        site_path=Path(args.site),
        var_dir=Path(args.var),
        influx_port=args.influx_port,
        mqtt_port=args.mqtt_port,
    )


def _faults(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    from jieshui.faults import parse_fault_option

    return [parse_fault_option(text) for text in args.fault or []]


def _load_site_or_exit(path: str) -> Any:
    from jieshui.inventory import load_site

    try:
        return load_site(path)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from exc


def _cmd_simulate(args: argparse.Namespace) -> int:
    from jieshui.errors import JieshuiError as _Err
    from simulators.runner import with_faults

    if not args.site:
        print("jieshui simulate: --site (or JIESHUI_SITE) is required", file=sys.stderr)
        return EXIT_INVALID
    site = _load_site_or_exit(args.site)
    try:
        site = with_faults(site, _faults(args))
    except KeyError as exc:
        raise _Err(str(exc.args[0])) from exc
    if args.mode == "backfill":
        return _simulate_backfill(args, site)
    return _simulate_live(args, site)


def _simulate_backfill(args: argparse.Namespace, site: Any) -> int:
    import time

    from jieshui.settings import Settings
    from simulators.backfill import backfill
    from simulators.runner import parse_date, parse_step
    from store.influx import InfluxStore

    try:
        start, end, step_s = parse_date(args.start), parse_date(args.end), parse_step(args.step)
    except ValueError as exc:
        print(f"jieshui simulate backfill: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if end <= start:
        print("jieshui simulate backfill: --end must be after --start", file=sys.stderr)
        return EXIT_INVALID
    config = _influx_config(args, Settings())
    t0 = time.monotonic()
    with InfluxStore(config) as store:
        store.bootstrap()
        stats = backfill(site, store, start, end, seed=args.seed, step_s=step_s,
                         truth_path=Path(args.truth) if args.truth else None)  # fmt: skip
    elapsed = time.monotonic() - t0
    print(
        f"backfilled {stats.days} days of {stats.devices} devices: {stats.points} points to "
        f"{config.url} database {config.target!r} in {elapsed:.1f} s "
        f"({stats.points / max(elapsed, 1e-9):,.0f}/s)" + (f"; truth in {args.truth}" if args.truth else "")
    )
    return 0


def _simulate_live(args: argparse.Namespace, site: Any) -> int:
    import signal
    import time

    from jieshui.settings import Settings, parse_mqtt_url
    from simulators.runner import start_live

    settings = Settings()
    broker = parse_mqtt_url(args.mqtt_url or settings.mqtt_url)
    start_ns = None
    if args.sim_start:
        import datetime as dt

        start_ns = int(dt.datetime.fromisoformat(args.sim_start).timestamp() * 1e9)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    work_dir = Path(args.var) / "simulate"
    sim = start_live(
        site, speed=args.speed, seed=args.seed, broker=broker, work_dir=work_dir, start_ns=start_ns,
        mqtt_ca_file=args.mqtt_ca_file or settings.mqtt_ca_file,
    )  # fmt: skip
    try:
        for server in sim.modbus:
            where = server.serial.port if server.serial else f"{server.host}:{server.port}"
            units = ", ".join(str(d.id) for d in server.devices)
            print(f"modbus  {where}  unit ids {units}")
        for pair in sim.serial:
            print(f"serial  {pair.client_port} (collector side) <-> {pair.server_port} (simulator side)")
        if sim.mqtt is not None:
            for d in sim.mqtt.devices:
                print(f"mqtt    {broker.host}:{broker.port}  {d.topic}")
        print(f"simulating at {args.speed:g}x with seed {args.seed}; Ctrl-C stops", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping simulators", flush=True)
    finally:
        sim.stop()
        if args.truth:
            import json

            Path(args.truth).write_text(json.dumps(sim.world.truth(), indent=1), encoding="utf-8")
            print(f"truth of the run in {args.truth}", flush=True)
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from devices.docs import render
    from devices.profile import load_profiles

    if args.action == "lock":
        from devices import lock

        load_profiles()  # validated first: a broken profile is its own error
        current, locked = lock.versions(), lock.read_lock()
        if args.check:
            found = lock.problems(current, locked)
            for problem in found:
                print(f"jieshui profiles lock: {problem}", file=sys.stderr)
            if not found:
                print(f"{lock.LOCK_FILE}: {len(locked)} profile versions, all as locked")
            return 1 if found else 0
        try:
            entries = lock.updated_lock(current, locked)
        except ProfileError as exc:
            print(f"jieshui profiles lock: {exc}", file=sys.stderr)
            return 1
        lock.write_lock(entries)
        print(f"wrote {lock.LOCK_FILE}: {len(entries)} profile versions ({len(entries) - len(locked)} new)")
        return 0
    if args.action == "list":
        for key, profile in sorted(load_profiles().items()):
            if "@" in key:
                faces = "+".join(x for x, on in (("modbus", profile.modbus), ("mqtt", profile.mqtt)) if on)
                print(f"{profile.ref}\t{profile.kind}\t{faces}\t{profile.vendor} {profile.model}")
        return 0
    out = Path(args.out)
    text = render()
    if args.check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is stale: run `jieshui profiles docs` and commit it", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from collector.service import Collector, CollectorConfig
    from jieshui.logs import configure_logging
    from jieshui.settings import Settings, parse_mqtt_url
    from jieshui.tls import client_context

    settings = Settings()
    configure_logging(settings.log_level, args.log_json or settings.log_json)
    site = _load_site_or_exit(args.site)
    known = {c.id for _, c in site.communities()}
    unknown = [c for c in args.only or [] if c not in known]
    if unknown:
        print(
            f"jieshui collect: --only names communities not in {args.site}: {', '.join(unknown)}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    collector_id = args.collector_id or settings.collector_id
    try:
        config = CollectorConfig(
            collector_id=collector_id,
            buffer_path=Path(args.buffer or settings.buffer_path or f"var/collector/{collector_id}.sqlite3"),
            buffer_max_lines=settings.buffer_max_lines,
            buffer_sync=settings.buffer_sync,
            buffer_reserve_bytes=int(settings.buffer_reserve_mb * 2**20),
            health_host=settings.health_host,
            health_port=args.health_port if args.health_port is not None else settings.health_port,
            health_interval_s=settings.health_interval_s,
            device_health_interval_s=settings.device_health_interval_s,
            only=tuple(args.only or ()),
            mqtt_share_group=args.share_group or settings.mqtt_share_group,
            mqtt_session_expiry_s=settings.mqtt_session_expiry_s,
            mqtt_keepalive_s=settings.mqtt_keepalive_s,
            mqtt_ca_file=args.mqtt_ca_file or settings.mqtt_ca_file,
            poll_interval_s=args.poll_interval or settings.poll_interval_s,
            modbus_timeout_s=settings.modbus_timeout_s,
            flush_interval_s=settings.flush_interval_s,
        )
        broker = parse_mqtt_url(args.mqtt_url or settings.mqtt_url)
        influx = _influx_config(args, settings)
        # a CA file that cannot be loaded is a configuration error: refuse it now, naming the variable
        if broker.tls:
            client_context(config.mqtt_ca_file, "JIESHUI_MQTT_CA_FILE")
        if influx.ca_file is not None:
            client_context(influx.ca_file, "JIESHUI_INFLUX_CA_FILE")
    except (ValueError, JieshuiError) as exc:
        print(f"jieshui collect: {exc}", file=sys.stderr)
        return EXIT_INVALID
    collector = Collector(site, config, influx, broker)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, collector.stop)
        ready = asyncio.Event()
        task = asyncio.create_task(collector.run(ready))
        await ready.wait()
        print(f"collector {collector_id} running; health on http://{config.health_host}:{collector.health_port}/healthz",
              flush=True)  # fmt: skip
        await task

    asyncio.run(main())
    return 0


VERDICT_TEXT = {
    "zh-CN": {"verified": "已核实", "partly_verified": "部分核实", "not_verified": "未核实",
              "insufficient_data": "数据不足"},
    "en": {"verified": "verified", "partly_verified": "partly verified", "not_verified": "not verified",
           "insufficient_data": "insufficient data"},
}  # fmt: skip


def _cmd_verify(args: argparse.Namespace) -> int:
    from jieshui.settings import Settings
    from store.influx import InfluxStore
    from verification.engine import verify

    site = _load_site_or_exit(args.site)
    try:
        site.community(args.community)
    except KeyError:
        print(f"jieshui verify: no community {args.community!r} in {args.site}", file=sys.stderr)
        return EXIT_INVALID
    config = _influx_config(args, Settings())
    with InfluxStore(config) as store:
        evidence = None
        if args.evidence_db:  # the daily digests (docs/evidence.md): days changed since are not evidence
            from api.db import Database
            from evidence.jobs import check

            db = Database(args.evidence_db)
            try:
                evidence = check(db, store, site, args.community, args.year).changed_days()
            finally:
                db.close()
        result = verify(store, site, args.community, args.year, evidence)
    if args.report:
        from verification.report import render_html, render_pdf

        out = Path(args.report)
        html = render_html(site, result, args.lang)
        if out.suffix.lower() == ".pdf":
            render_pdf(html, out)
        else:
            out.write_text(html, encoding="utf-8")
        print(f"report: {out}", file=sys.stderr)
    if args.json:
        print(result.model_dump_json(by_alias=True, indent=2))
        return 0
    zh = args.lang == "zh-CN"
    words = VERDICT_TEXT[args.lang]
    print(f"{result.name} ({result.community}) {result.year}: " + ("核查结论" if zh else "verdicts"))
    for claim in result.claims:
        measured = "-" if claim.measured is None else f"{claim.measured:.4g}"
        claimed = f"{'声明' if zh else 'claimed'} {claim.claimed:g} {claim.unit}"
        print(
            f"  {claim.id:<20} {words[claim.verdict]:<18} {claimed}  "
            f"{'实测' if zh else 'measured'} {measured}"
        )
        for reason in claim.reasons:
            print(f"      - {reason.zh if zh else reason.en}")
    return 0


def _db_url(args: argparse.Namespace) -> str:
    from jieshui.settings import Settings

    return str(args.db_url or Settings().db_url)


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.db import Database
    from api.deps import ApiContext
    from api.live import Thresholds
    from jieshui.logs import configure_logging
    from jieshui.settings import Settings
    from programme.cycle import parse_deadline
    from store.influx import InfluxStore

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    site = _load_site_or_exit(args.site)
    limits = Thresholds(
        overflow_pct=settings.api_overflow_pct, low_pct=settings.api_low_pct, dry_days=settings.api_dry_days,
        silent_intervals=settings.api_silent_intervals,
    )  # fmt: skip
    store = InfluxStore(_influx_config(args, settings))
    ctx = ApiContext(
        site, Database(_db_url(args)), store, limits=limits, token_ttl_s=settings.api_token_ttl_s,
        status_cache_s=settings.api_status_cache_s,
        auth_cache_s=settings.api_auth_cache_s, registry_cache_s=settings.api_registry_cache_s,
        application_deadline=parse_deadline(settings.application_deadline),
    )  # fmt: skip
    print(f"jieshui api: http://{args.host}:{args.port}/docs (SQL: {ctx.db.engine.url!r})", file=sys.stderr)
    uvicorn.run(create_app(ctx), host=args.host, port=args.port, log_level=settings.log_level.lower())
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    import datetime as dt

    from api.auth import Role, audit, create_key, list_keys, revoke_key
    from api.db import Database
    from api.errors import ApiError
    from api.routes.admin import check_scope

    db = Database(_db_url(args))
    now = dt.datetime.now(dt.UTC)
    try:
        if args.action == "create":
            role = Role(args.role)
            communities = list(args.community or [])
            if args.site:
                try:
                    check_scope(_load_site_or_exit(args.site), role, communities)
                except ApiError as exc:
                    print(f"jieshui keys create: {exc.code}: {exc.params}", file=sys.stderr)
                    return EXIT_INVALID
            elif role is Role.MANAGER and not communities:
                print("jieshui keys create: a manager key needs --community", file=sys.stderr)
                return EXIT_INVALID
            with db.session() as s:
                row, text = create_key(s, role, communities, args.label or "", "cli", now)
                audit(s, "cli", "admin", "key.create", f"key/{row.id}", now, key_role=str(role),
                      communities=row.communities, label=row.label)  # fmt: skip
            print(text)  # the only time the key is shown
            print(
                f"key {row.id}: role {row.role}, communities {','.join(row.communities) or '-'}",
                file=sys.stderr,
            )
        elif args.action == "list":
            with db.session() as s:
                for k in list_keys(s):
                    state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                    print(f"{k.id}\t{k.role}\t{','.join(k.communities) or '-'}\t{state}\t{k.label}")
        else:
            with db.session() as s:
                revoked = revoke_key(s, args.key_id, now)
                if revoked is None:
                    print(f"jieshui keys revoke: no key {args.key_id!r}", file=sys.stderr)
                    return EXIT_INVALID
                audit(s, "cli", "admin", "key.revoke", f"key/{args.key_id}", now)
            print(f"revoked {args.key_id}")
    finally:
        db.close()
    return 0


def _cmd_applications(args: argparse.Namespace) -> int:
    import datetime as dt

    from api.db import Database
    from api.errors import ApiError, message
    from api.workflow import export_form, find_district, form_rows, import_form
    from jieshui.settings import Settings
    from programme.cycle import parse_deadline
    from programme.forms import FormError, FormKind

    path = Path(args.file)
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        print(f"jieshui applications: {path}: the file must end in .xlsx or .csv", file=sys.stderr)
        return EXIT_INVALID
    fmt: Literal["xlsx", "csv"] = "xlsx" if suffix == ".xlsx" else "csv"
    site = _load_site_or_exit(args.site)
    kind = FormKind(args.form)
    db = Database(_db_url(args))
    try:
        with db.session() as s:
            if args.action == "import":
                deadline = parse_deadline(Settings().application_deadline)
                now = dt.datetime.now(dt.UTC)
                data = path.read_bytes()
                rows = import_form(
                    s, site, args.district, args.year, kind, data, fmt, now, "cli", "admin", deadline
                )
                print(f"{path}: {len(rows)} row(s) stored for {args.district} {args.year} ({kind})")
                for a in rows:
                    print(f"  {a.seq:>2} {a.community:<24} {a.name}{'  示范' if a.benchmark else ''}")
            else:
                district = find_district(site, args.district)
                stored = form_rows(s, args.district, args.year, kind)
                path.write_bytes(export_form(stored, kind, district, args.year, fmt))
                print(f"{path}: written")
    except FormError as exc:
        for p in exc.problems:
            where = ":".join(str(x) for x in (p.row, p.column) if x is not None)
            text = p.zh if args.lang == "zh-CN" else p.en
            print(f"{path}:{where}: {text}" if where else f"{path}: {text}", file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s); nothing stored", file=sys.stderr)
        return EXIT_INVALID
    except ApiError as exc:
        print(f"jieshui applications: {message(exc.code, args.lang, **exc.params)}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        db.close()
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from api.db import Database

    db = Database(_db_url(args))  # migrates on open
    print(f"{db.engine.url!r}: schema up to date")
    db.close()
    return 0


def _cmd_grafana(args: argparse.Namespace) -> int:
    from grafana import FOLDER_TITLE, FOLDER_UID, PROVISIONING
    from grafana.push import GrafanaError, ProvisioningError, describe, load_provisioning, plan
    from grafana.push import placeholder_values as influx_values
    from grafana.push import push as push_to_grafana
    from jieshui.settings import Settings

    settings = Settings()
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    variables = influx_values(
        args.influx_url or settings.influx_url,
        args.influx_database or settings.influx_database,
        args.influx_token or token,
    )
    root = Path(args.provisioning) if args.provisioning else PROVISIONING
    try:
        steps = plan(load_provisioning(root, variables), FOLDER_UID, args.folder_title or FOLDER_TITLE)
    except ProvisioningError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    if args.dry_run:
        for step in steps:
            print(f"would push {describe(step)}")
        print(f"dry run: {len(steps)} object(s), no request sent", file=sys.stderr)
        return 0
    missing = [f"--{n} (or JIESHUI_GRAFANA_{n.upper()})" for n in ("url", "token") if not getattr(args, n)]
    if missing:
        print(f"jieshui grafana push: {' and '.join(missing)} required", file=sys.stderr)
        return EXIT_INVALID
    if not args.url.startswith(("http://", "https://")):
        print(f"jieshui grafana push: --url {args.url!r} must start with http(s)://", file=sys.stderr)
        return EXIT_INVALID
    if args.timeout <= 0:
        print(f"jieshui grafana push: --timeout must be > 0 s, got {args.timeout:g}", file=sys.stderr)
        return EXIT_INVALID
    try:
        outcomes = push_to_grafana(steps, args.url, args.token, timeout_s=args.timeout)
    except GrafanaError as exc:
        print(f"jieshui grafana push: {exc}", file=sys.stderr)
        return 1
    created = sum(o.action == "created" for o in outcomes)
    print(f"pushed {len(outcomes)} object(s) to {args.url}: {created} created, "
          f"{len(outcomes) - created} updated", file=sys.stderr)  # fmt: skip
    return 0


def _site_option(parser: argparse.ArgumentParser) -> None:
    site = _env("SITE")
    parser.add_argument("--site", required=site is None, default=site, help="inventory YAML file")


def _influx_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--influx-url", default=None, help="InfluxDB URL (default JIESHUI_INFLUX_URL)")
    parser.add_argument("--influx-database", default=None, help="database (default JIESHUI_INFLUX_DATABASE)")


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db-url", default=None, help="SQLAlchemy URL (default JIESHUI_DB_URL, else SQLite in var/)"
    )


def _influx_config(args: argparse.Namespace, settings: Any) -> Any:
    """The InfluxDB connection: JIESHUI_INFLUX_* settings, with --influx-url/--influx-database on top."""
    from store.influx import InfluxConfig

    config = InfluxConfig.from_settings(settings)
    overrides = {k: v for k, v in (("url", args.influx_url), ("database", args.influx_database)) if v}
    return config.model_copy(update=overrides)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `jieshui` command."""
    parser = argparse.ArgumentParser(
        prog="jieshui",
        description="Jieshui (节水): telemetry and verification for water-saving residential communities.",
    )
    parser.add_argument("--version", action="version", version=f"jieshui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="validate a site inventory file and print a summary or every error",
        description="Validate a site inventory: exit 0 with a summary, or exit 2 with one "
        "`FILE:LINE: dotted.path: message` line per error.",
    )
    _site_option(check)
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser(
        "demo",
        help="run the whole system on this machine (own influxd and mosquitto under var/)",
        description="Start influxd and mosquitto from the system's binaries with data under --var, "
        "bootstrap the database, write and read back a reading, print where everything is, and stop "
        "everything cleanly on Ctrl-C.",
    )
    demo.add_argument("--site", default=_env("SITE", "examples/district.yaml"), help="inventory file")
    demo.add_argument("--var", default=_env("VAR_DIR", "var"), help="data and log directory")
    demo.add_argument(
        "--influx-port", type=int, default=_env("DEMO_INFLUX_PORT"), help="influxd port (default: a free one)"
    )
    demo.add_argument(
        "--mqtt-port", type=int, default=_env("DEMO_MQTT_PORT"), help="mosquitto port (default: a free one)"
    )
    demo.set_defaults(func=_cmd_demo)

    collect = sub.add_parser(
        "collect",
        help="run the collector: Modbus and MQTT meters into InfluxDB, every reading exactly once",
        description="Poll every Modbus device and subscribe to every MQTT device of the inventory, "
        "buffer durably, write to InfluxDB. Configuration: flags, else JIESHUI_* variables "
        "(docs/operations.md).",
    )
    _site_option(collect)
    collect.add_argument(
        "--only", action="append", metavar="COMMUNITY", help="collect only these communities"
    )
    collect.add_argument(
        "--collector-id", default=None, help="this collector's id (default JIESHUI_COLLECTOR_ID)"
    )
    collect.add_argument("--buffer", default=None, help="buffer file (default var/collector/<id>.sqlite3)")
    collect.add_argument("--health-port", type=int, default=None, help="/healthz and /metrics port (0: free)")
    collect.add_argument("--mqtt-url", default=None, help="broker URL (default JIESHUI_MQTT_URL)")
    collect.add_argument("--share-group", default=None, help="MQTT v5 shared subscription group")
    collect.add_argument(
        "--mqtt-ca-file", default=None, help="CA certificate for mqtts:// (default JIESHUI_MQTT_CA_FILE)"
    )
    collect.add_argument(
        "--poll-interval", type=float, default=None, help="override every device's interval (s)"
    )
    _influx_options(collect)
    collect.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    collect.set_defaults(func=_cmd_collect)

    verify = sub.add_parser(
        "verify",
        help="check a community's claimed savings for a year against its metered data",
        description="Read the community's meters for the reporting year from InfluxDB, run every check "
        "(docs/verification.md) and give each claim a verdict: verified, partly_verified, not_verified or "
        "insufficient_data. --json prints the versioned result (jieshui.verification/1).",
    )
    _site_option(verify)
    verify.add_argument("--community", required=True, help="community id")
    verify.add_argument("--year", type=int, required=True, help="reporting year (Asia/Shanghai calendar)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--lang", choices=["zh-CN", "en"], default="zh-CN", help="language of the output and the report"
    )
    verify.add_argument(
        "--report", default=None, metavar="OUT.html|OUT.pdf", help="write the evaluation report"
    )
    verify.add_argument(
        "--evidence-db", default=None, metavar="URL",
        help="SQL database holding the daily digests (JIESHUI_DB_URL of the API): claims resting on days "
        "whose data changed after they were digested are not verified (default: digests not checked)",
    )  # fmt: skip
    _influx_options(verify)
    verify.set_defaults(func=_cmd_verify)

    api = sub.add_parser(
        "api",
        help="serve the HTTP API (FastAPI, uvicorn)",
        description="Serve the API for property managers and evaluators; OpenAPI at /docs and /openapi.json. "
        "The SQL database (JIESHUI_DB_URL, SQLite by default) is migrated on start.",
    )
    _site_option(api)
    api.add_argument("--host", default=_env("API_HOST", "127.0.0.1"), help="address (JIESHUI_API_HOST)")
    api.add_argument(
        "--port", type=int, default=int(_env("API_PORT", "8000") or 8000), help="port (JIESHUI_API_PORT)"
    )
    _db_option(api)
    _influx_options(api)
    api.set_defaults(func=_cmd_api)

    keys = sub.add_parser(
        "keys", help="create, list or revoke API keys",
        description="`create --role manager --community ID` prints a new key once (only its hash is stored).",
    )  # fmt: skip
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    kc = key_actions.add_parser("create", help="create a key and print it once")
    kc.add_argument("--role", required=True, choices=["admin", "manager", "evaluator"])
    kc.add_argument("--community", action="append", help="a community a manager key sees (repeatable)")
    kc.add_argument("--label", default="", help="who holds the key (shown in the audit log)")
    kc.add_argument("--site", default=_env("SITE"), help="inventory to check --community against")
    kl = key_actions.add_parser("list", help="list keys (never their secrets)")
    kr = key_actions.add_parser("revoke", help="revoke a key and its tokens")
    kr.add_argument("key_id")
    for p in (kc, kl, kr):
        _db_option(p)
        p.set_defaults(func=_cmd_keys)

    apps = sub.add_parser(
        "applications",
        help="import or export a district's programme form (附件2 applications, 附件1 car-wash pilots)",
        description="`import` validates a district's form (XLSX or CSV, by the file's suffix) and replaces "
        "its rows for the year, or stores nothing and exits 2 naming every problem's row and column; "
        "`export` writes the stored form. docs/programme.md has the rules.",
    )
    app_actions = apps.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in (("import", "validate and store a form"), ("export", "write the stored form")):
        p = app_actions.add_parser(action, help=help_text)
        p.add_argument("--district", required=True, help="inventory id of the district the form is for")
        p.add_argument("--year", type=int, required=True, help="programme year (applications in it)")
        p.add_argument("--form", choices=["application", "car_wash_pilot"], default="application")
        p.add_argument("--lang", choices=["zh-CN", "en"], default="zh-CN", help="language of the messages")
        p.add_argument("file", metavar="FILE" if action == "import" else "OUT", help=".xlsx or .csv")
        _site_option(p)
        _db_option(p)
        p.set_defaults(func=_cmd_applications)

    db = sub.add_parser("db", help="create or upgrade the SQL schema (Alembic)")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = db_actions.add_parser("upgrade", help="migrate to the newest schema")
    _db_option(up)
    up.set_defaults(func=_cmd_db)

    grafana = sub.add_parser(
        "grafana",
        help="push the datasource, dashboards and alert rules to a running Grafana (HTTP API)",
        description="`push` uploads grafana/provisioning (the InfluxQL datasource, the dashboards, the alert "
        "rule groups) into the folder 节水 Jieshui by uid: a second push updates, never duplicates.",
    )
    grafana_actions = grafana.add_subparsers(dest="action", required=True, metavar="ACTION")
    gp = grafana_actions.add_parser(
        "push",
        help="create or update every provisioned object by uid",
        description="Create or update the folder, the datasource (its ${JIESHUI_INFLUX_*} placeholders "
        "filled from --influx-* or JIESHUI_INFLUX_*), the dashboards and the alert rules, one line per "
        "object. Exit 2 for invalid files, 1 when Grafana refuses a request or cannot be reached.",
    )
    gp.add_argument("--url", default=_env("GRAFANA_URL"), help="Grafana's base URL (JIESHUI_GRAFANA_URL)")
    gp.add_argument(
        "--token", default=_env("GRAFANA_TOKEN"),
        help="service-account token, sent as a Bearer token (JIESHUI_GRAFANA_TOKEN; prefer the variable)",
    )  # fmt: skip
    _influx_options(gp)
    gp.add_argument("--influx-token", default=None, help="InfluxDB token (default JIESHUI_INFLUX_TOKEN)")
    gp.add_argument(
        "--folder-title", default=_env("GRAFANA_FOLDER_TITLE"),
        help="title of the folder, uid jieshui (JIESHUI_GRAFANA_FOLDER_TITLE, default 节水 Jieshui)",
    )  # fmt: skip
    gp.add_argument(
        "--provisioning", default=_env("GRAFANA_PROVISIONING"), metavar="DIR",
        help="provisioning directory (JIESHUI_GRAFANA_PROVISIONING, default grafana/provisioning)",
    )  # fmt: skip
    gp.add_argument(
        "--timeout", type=float, default=_env("GRAFANA_TIMEOUT_S", "10"),
        help="seconds to wait for each answer (JIESHUI_GRAFANA_TIMEOUT_S, default 10)",
    )  # fmt: skip
    gp.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    gp.set_defaults(func=_cmd_grafana)

    add_mqtt_parser(sub)
    add_evidence_parser(sub)

    profiles = sub.add_parser(
        "profiles",
        help="list the device profiles, generate docs/devices.md, or lock their versions",
        description="`list` prints every profile; `docs` writes docs/devices.md (`--check`: fail if stale); "
        "`lock` records each profile version's content hash in devices/profiles.lock.json (`--check`: fail "
        "if a locked version changed or vanished: a changed profile needs a new version).",
    )
    profiles.add_argument("action", choices=["list", "docs", "lock"])
    profiles.add_argument("--out", default="docs/devices.md", help="where `docs` writes")
    profiles.add_argument("--check", action="store_true", help="only check the file is up to date")
    profiles.set_defaults(func=_cmd_profiles)

    simulate = sub.add_parser(
        "simulate",
        help="run a site's simulated devices live (Modbus and MQTT), or backfill history",
        description="Run every device of the inventory live: Modbus TCP/RTU servers and MQTT publishers "
        "on a simulated clock. `jieshui simulate backfill` writes a period of history into InfluxDB instead.",
    )
    _simulation_options(simulate)
    simulate.add_argument("--speed", type=float, default=float(_env("SPEED", "1") or 1),
                          help="simulated seconds per second (3600: an hour a second)")  # fmt: skip
    simulate.add_argument(
        "--start", dest="sim_start", default=None, help="simulated start time, ISO (default: now)"
    )
    simulate.add_argument("--mqtt-url", default=None, help="broker URL (default JIESHUI_MQTT_URL)")
    simulate.add_argument(
        "--mqtt-ca-file", default=None, help="CA certificate for mqtts:// (default JIESHUI_MQTT_CA_FILE)"
    )
    simulate.add_argument("--var", default=_env("VAR_DIR", "var"), help="work directory (serial lines)")
    simulate.add_argument("--truth", default=None, help="on exit, write what really flowed to this JSON file")
    modes = simulate.add_subparsers(dest="mode", metavar="MODE")
    bf = modes.add_parser(
        "backfill",
        help="write simulated history straight into InfluxDB, with its ground truth",
        description="Simulate --start..--end (local dates, end excluded) and write every reading "
        "into InfluxDB through the store, as fast as the server accepts it.",
    )
    _simulation_options(bf, nested=True)
    bf.add_argument("--start", required=True, help="first local date, YYYY-MM-DD")
    bf.add_argument("--end", required=True, help="local date after the last one, YYYY-MM-DD")
    bf.add_argument("--step", default="1m", help="reading interval: 30s, 1m, 15m, 1h (default 1m)")
    bf.add_argument("--truth", default=None, help="write the ground truth to this JSON file")
    _influx_options(bf)
    simulate.set_defaults(func=_cmd_simulate, mode=None)
    return parser


def _simulation_options(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    # Given to `simulate` or to `simulate backfill` alike; the nested parser must not overwrite what
    # the outer one read with its own defaults, hence SUPPRESS there.
    site = _env("SITE")
    seed = int(_env("SEED", "1") or 1)
    parser.add_argument("--site", default=argparse.SUPPRESS if nested else site, help="inventory YAML file")
    parser.add_argument("--seed", type=int, default=argparse.SUPPRESS if nested else seed, help="random seed")
    parser.add_argument(
        "--fault",
        action="append",
        metavar="COMMUNITY/DEVICE:KIND[:k=v,...]",
        default=argparse.SUPPRESS if nested else None,
        help="inject a fault (repeatable), e.g. xinjing-6/rw-controller:stuck:quantity=level_pct",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except JieshuiError as exc:
        print(f"jieshui {args.command}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
