"""``tippen-rt``: serve, manage tenants and their alerts, back the database up.

Every command finds the database by ``--db PATH`` or ``TIPPEN_DB_PATH``
(default ``./tippen.db``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import orjson
import trio

from . import __version__
from .alerts import (
    add_alert_commands,
    duration_in_words,
    mask,
    run_slack_command,
    run_tenant_set,
    run_tenant_show,
    utc_time,
)
from .config import Settings, SettingsError, describe_settings, markdown_settings_table
from .observe import configure_logging
from .persist import (
    MAX_KEY_OVERLAP_S,
    AgentExists,
    BackupError,
    NoSuchAgent,
    NoSuchTenant,
    SchemaTooNew,
    TenantExists,
    backup_database,
    create_agent,
    create_tenant,
    get_tenant_by_name,
    list_agents,
    list_tenants,
    open_database,
    remove_agent,
    remove_tenant,
    rotate_admin_token,
    rotate_api_key,
    tenant_rows,
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tippen-rt",
        description="Notice, live, when a signed-in user of your app needs help.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"tippen-rt {__version__}")
    parser.add_argument("--db", type=Path, default=None, help=DB_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080; 0 = any free)")
    serve.add_argument(
        "--public-url",
        default=None,
        help="URL admins reach this service at, for links in Slack (env TIPPEN_PUBLIC_URL;"
        " default none: alerts have no link, except with --demo)",
    )
    serve.add_argument(
        "--redis-url",
        default=None,
        help="snapshot live state to this Redis (env TIPPEN_REDIS_URL; default none:"
        " snapshots go to the SQLite file)",
    )
    serve.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="create a demo tenant if none exists and print how to log in (env TIPPEN_DEMO;"
        " default off)",
    )

    tenant = commands.add_parser("tenant", help="manage tenants (apps that send events)")
    tenant_cmds = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    add = tenant_cmds.add_parser("add", help="create a tenant with a fresh API key and admin token")
    add.add_argument("name")
    add.add_argument(
        "--origin",
        action="append",
        default=[],
        help="an origin allowed to send events, e.g. https://app.example.com (repeatable;"
        " default none: browsers are refused until `tenant set --add-origin`)",
    )
    add.add_argument("--json", action="store_true", help="print name, api_key, admin_token as JSON")
    lst = tenant_cmds.add_parser("list", help="list tenants")
    lst.add_argument("--json", action="store_true", help="print as JSON")
    show = tenant_cmds.add_parser(
        "show", help="show a tenant: keys, origins, identity, Slack, every threshold"
    )
    show.add_argument("name")
    show.add_argument(
        "--secret",
        choices=("identity",),
        help="print only this secret (identity: the key of the userHash HMAC, for your app;"
        " default: print everything, secrets masked)",
    )
    rotate = tenant_cmds.add_parser(
        "rotate-admin-token",
        help="give a tenant a new admin token; the old one and every session made with it end",
    )
    rotate.add_argument("name")
    rotate_key = tenant_cmds.add_parser(
        "rotate-key",
        help="give a tenant a new API key; the old one keeps working for an overlap, then stops",
    )
    rotate_key.add_argument("name")
    rotate_key.add_argument(
        "--overlap-hours",
        type=float,
        default=DEFAULT_KEY_OVERLAP_H,
        metavar="HOURS",
        help="how long the old key keeps working, so pages already deployed with it can be"
        f" updated (default {DEFAULT_KEY_OVERLAP_H:g}; 0: it stops at once)",
    )
    remove = tenant_cmds.add_parser(
        "remove",
        help="delete a tenant and all its data; its key, dashboards and live users stop",
    )
    remove.add_argument("name")
    remove.add_argument(
        "--yes", action="store_true", help="do not ask to type the name first (for scripts)"
    )
    # tenant set (Slack target, video calls, rate limit) and slack test
    add_alert_commands(commands, tenant_cmds)

    agent = commands.add_parser("agent", help="manage support agents: one login each")
    agent_cmds = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    agent_add = agent_cmds.add_parser(
        "add", help="add an agent to a tenant; prints their personal login token (shown once)"
    )
    agent_add.add_argument("tenant")
    agent_add.add_argument("name", help="how the dashboard and Slack name them")
    agent_add.add_argument("--email", default=None, help="their email address (default none)")
    agent_list = agent_cmds.add_parser("list", help="list a tenant's agents")
    agent_list.add_argument("tenant")
    agent_remove = agent_cmds.add_parser(
        "remove", help="remove an agent: their token and open dashboards stop working"
    )
    agent_remove.add_argument("tenant")
    agent_remove.add_argument("name")

    backup = commands.add_parser(
        "backup",
        help="copy the database to PATH, consistent while the service runs (SQLite's"
        " backup API), checked for integrity",
    )
    backup.add_argument("path", type=Path, metavar="PATH", help="a new file for the copy")

    config = commands.add_parser(
        "config", help="show every TIPPEN_* setting: its value now, its default, what it does"
    )
    config.add_argument(
        "--markdown", action="store_true", help="print the reference table for README.md"
    )

    sim = commands.add_parser(
        "simulate", help="drive synthetic users through a running service's HTTP API"
    )
    sim.add_argument("--users", type=int, default=20, help="how many users (default 20)")
    sim.add_argument("--url", required=True, help="the service's base URL")
    sim.add_argument("--api-key", required=True, help="the tenant's API key (client_...)")
    sim.add_argument("--duration", type=float, default=600.0, help="seconds to run (default 600)")
    sim.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for the same run again (default: a new random run each time)",
    )
    sim.add_argument(
        "--flush", type=float, default=5.0, help="seconds between a user's batches (default 5)"
    )
    for sub in _subcommand_parsers(parser):
        # Global options work after the command too (tippen-rt serve --db x.db);
        # SUPPRESS keeps a value given before the command when none comes after.
        sub.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=DB_HELP)
    return parser


DB_HELP = "SQLite file (env TIPPEN_DB_PATH, default tippen.db)"
EXIT_STATUS = (
    "exit status: 0 done; 1 failed (e.g. Slack refused the test message, the database"
    " could not be used); 2 a usage or input mistake (an unknown tenant or agent, a name"
    " already taken, a bad value), said in one line, with nothing changed."
)
#: How long ``tenant rotate-key`` keeps the old API key working by default.
DEFAULT_KEY_OVERLAP_H = 24.0


def _subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser``: commands and their actions."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += [sub, *_subcommand_parsers(sub)]
    return found


def _db_arg(args: argparse.Namespace) -> dict[str, object]:
    # --db may come before or after the command; both land in args.db.
    return {"db_path": args.db}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tippen-rt`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                os.environ,
                db_path=args.db,
                host=args.host,
                port=args.port,
                public_url=args.public_url,
                redis_url=args.redis_url,
                log_level=args.log_level,
                demo=args.demo,
            )
            problems = settings.problems()
            if problems:
                for line in problems:
                    print(f"tippen-rt: {line}", file=sys.stderr)
                return 2
            return _serve(settings)
        if args.command == "simulate":
            return _simulate(args)
        settings = Settings.from_env(os.environ, **_db_arg(args))
        if args.command == "tenant" and args.tenant_command == "set":
            return run_tenant_set(args, settings)
        if args.command == "tenant" and args.tenant_command == "show":
            return run_tenant_show(args, settings)
        if args.command == "tenant":
            return _tenant(args, settings)
        if args.command == "agent":
            return _agent(args, settings)
        if args.command == "slack":
            return run_slack_command(args, settings)
        if args.command == "config":
            return _config(args, settings)
        if args.command == "backup":
            return _backup(settings.db_path, args.path)
    except (SettingsError, SchemaTooNew) as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # unreadable, locked too long, not a database
        print(f"tippen-rt: database error: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")


def _config(args: argparse.Namespace, settings: Settings) -> int:
    docs = describe_settings()
    if args.markdown:
        print(markdown_settings_table(docs))
        return 0
    secret = (
        "TIPPEN_SECRET_KEY",
        "TIPPEN_SLACK_BOT_TOKEN",
        "TIPPEN_SLACK_WEBHOOK_URL",
        "TIPPEN_OPERATOR_TOKEN",
    )
    for doc in docs:
        value = getattr(settings, doc.env[len("TIPPEN_") :].lower())
        shown = "(set)" if doc.env in secret and value else str(value)
        print(f"{doc.env}={shown}   # default {doc.default}: {doc.doc}")
    for name in settings.extra:
        print(f"{name}: unknown setting, ignored")
    return 0


def _backup(source: Path, dest: Path) -> int:
    try:
        report = backup_database(source, dest)
    except BackupError as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    print(
        f"backed up {source} to {report.path}: {report.bytes / 2**20:.1f} MiB,"
        f" schema version {report.schema_version}, {report.tenants} tenants,"
        f" {report.events} events, integrity ok, in {report.seconds:.1f} s"
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import UnknownApiKey, simulate

    if args.users < 1 or args.duration <= 0 or args.flush <= 0:
        print("tippen-rt: --users, --duration and --flush must be positive", file=sys.stderr)
        return 2
    print(
        f"simulating {args.users} users against {args.url} for {args.duration:g} s (Ctrl+C stops)",
        flush=True,
    )
    try:
        stats = trio.run(
            partial(
                simulate,
                args.url,
                args.api_key,
                users=args.users,
                duration_s=args.duration,
                seed=args.seed,
                flush_s=args.flush,
                report=lambda line: print(line, flush=True),
            )
        )
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        unknown, rest = group.split(UnknownApiKey)
        if rest is not None or unknown is None:
            raise
        print("tippen-rt: the service does not know that API key", file=sys.stderr)
        return 2
    print(f"done: {stats.summary()}; personas: {dict(stats.personas)}", flush=True)
    return 0


def _serve(settings: Settings) -> int:
    from .app import PortInUse, run_service
    from .persist import DatabaseInUse

    configure_logging(settings.log_level, settings.log_format)
    for name in settings.extra:
        logging.getLogger("tippen_rt").warning("unknown setting %s is ignored", name)
    try:
        trio.run(run_service, settings)
    except (DatabaseInUse, PortInUse, SchemaTooNew) as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    return 0


def _agent(args: argparse.Namespace, settings: Settings) -> int:
    conn = open_database(settings.db_path)
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if args.agent_command == "add":
                agent, token = create_agent(conn, args.tenant, args.name, args.email)
                print(f"agent:       {agent.name} ({args.tenant})")
                print(f"login token: {token}   (secret: shown only now; give it to them)")
            elif args.agent_command == "list":
                for a in list_agents(conn, args.tenant):
                    print(f"{a.name}\t{a.email or ''}")
            else:
                agent = remove_agent(conn, args.tenant, args.name)
                print(f"removed {agent.name}: their sessions end within seconds")
    except (NoSuchTenant, NoSuchAgent, AgentExists, ValueError) as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    return 0


def _tenant(args: argparse.Namespace, settings: Settings) -> int:
    conn = open_database(settings.db_path)
    try:
        if args.tenant_command == "add":
            try:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    tenant, token = create_tenant(conn, args.name, args.origin)
            except (TenantExists, ValueError) as exc:
                print(f"tippen-rt: {exc}", file=sys.stderr)
                return 2
            if args.json:
                print(
                    orjson.dumps(
                        {
                            "name": tenant.name,
                            "api_key": tenant.api_key,
                            "admin_token": token,
                            "origins": list(tenant.origins),
                        }
                    ).decode()
                )
            else:
                print(f"tenant:      {tenant.name}")
                print(f"api key:     {tenant.api_key}   (public: goes in the script tag)")
                print(f"admin token: {token}   (secret: shown only now)")
                print(f"origins:     {', '.join(tenant.origins) or '(none: browsers are refused)'}")
            return 0
        if args.tenant_command == "rotate-admin-token":
            try:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    token = rotate_admin_token(conn, args.name)
            except NoSuchTenant as exc:
                print(f"tippen-rt: {exc}", file=sys.stderr)
                return 2
            print(f"admin token: {token}   (secret: shown only now)")
            print("the old token and every dashboard session made with it end within 10 seconds")
            return 0
        if args.tenant_command == "rotate-key":
            return _rotate_key(conn, args.name, args.overlap_hours)
        if args.tenant_command == "remove":
            return _remove_tenant(conn, args.name, confirmed=args.yes)
        if args.tenant_command == "list":
            tenants = list_tenants(conn)
            if args.json:
                print(
                    orjson.dumps(
                        [
                            {"name": t.name, "api_key": t.api_key, "origins": list(t.origins)}
                            for t in tenants
                        ]
                    ).decode()
                )
            else:
                for t in tenants:
                    print(f"{t.name}\t{t.api_key}\t{' '.join(t.origins)}")
            return 0
    finally:
        conn.close()
    return 2


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rotate_key(conn: sqlite3.Connection, name: str, overlap_h: float) -> int:
    most_h = MAX_KEY_OVERLAP_S // 3600
    if not 0 <= overlap_h <= most_h:  # NaN too
        print(
            f"tippen-rt: --overlap-hours must be 0 to {most_h}, not {overlap_h:g}", file=sys.stderr
        )
        return 2
    now_ms = _now_ms()
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            before = get_tenant_by_name(conn, name)
            after = rotate_api_key(conn, name, overlap_s=overlap_h * 3600, now_ms=now_ms)
    except NoSuchTenant as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    print(f"api key:     {after.api_key}   (public: put it in the script tag in place of the old)")
    old = mask(before.api_key)
    if after.previous_api_key_expires_at is None:
        print(f"old key:     {old} stops now (a running service refuses it within 10 seconds)")
    else:
        until = after.previous_api_key_expires_at
        print(
            f"old key:     {old} keeps working until {utc_time(until)}"
            f" ({duration_in_words(until - now_ms)}), then stops"
        )
    earlier = before.previous_api_key
    if earlier and before.accepts_api_key(earlier, now_ms):
        print(f"the key before it, {mask(earlier)}, stops now (one old key is kept at most)")
    return 0


#: What ``tenant remove`` names, per table; the other tables hold bookkeeping.
_ROWS_IN_WORDS = {
    "user_activity_events": "events",
    "user_activity_summary": "users",
    "support_alerts": "alerts",
    "video_calls": "video calls",
    "agents": "agents",
}


def _rows_in_words(rows: dict[str, int]) -> str:
    return ", ".join(f"{rows.get(table, 0)} {words}" for table, words in _ROWS_IN_WORDS.items())


def _remove_tenant(conn: sqlite3.Connection, name: str, *, confirmed: bool) -> int:
    try:
        tenant = get_tenant_by_name(conn, name)
    except NoSuchTenant as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    what = _rows_in_words(tenant_rows(conn, tenant.id))
    if not confirmed:
        if not sys.stdin.isatty():
            print(
                f"tippen-rt: removing {name!r} deletes all its data; confirm on a terminal,"
                " or add --yes",
                file=sys.stderr,
            )
            return 2
        print(
            f"This deletes tenant {name!r} and all its data ({what}); it cannot be undone.",
            file=sys.stderr,
        )
        print("Type the tenant's name to confirm: ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip() != name:
            print("tippen-rt: not confirmed; nothing was removed", file=sys.stderr)
            return 2
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            removed = remove_tenant(conn, name, now_ms=_now_ms())
    except NoSuchTenant as exc:  # removed by someone else meanwhile
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    print(f"removed tenant {name!r} and its data ({_rows_in_words(removed)})")
    print(
        "a running service refuses its API key, ends its dashboard sessions and drops"
        " its live users within 10 seconds"
    )
    return 0
