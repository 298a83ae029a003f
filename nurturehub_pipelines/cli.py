"""The `nurturehub` command. Creating commands print one JSON object; errors go to stderr, exit 1."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from nurturehub_pipelines import settings


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--{what} takes KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=str))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import db

    db.upgrade()
    _emit({"database": db.engine().url.render_as_string(hide_password=True), "status": "up to date"})
    return 0


def cmd_org_create(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db

    with db.engine().begin() as conn:
        _emit(accounts.create_org(conn, args.name, args.owner_email))
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db

    with db.engine().begin() as conn:
        _emit(accounts.add_user(conn, args.org, args.email, args.role))
    return 0


def cmd_integration_add(args: argparse.Namespace) -> int:
    from crm_resources.registry import check_integration, crm_name
    from nurturehub_pipelines.store import accounts, db

    integration_settings = _pairs(args.setting, "setting")
    credentials = _pairs(args.credential, "credential")
    check_integration(args.crm, integration_settings, credentials)
    with db.engine().begin() as conn:
        integration_id = accounts.add_integration(
            conn, args.org, args.crm, args.name or crm_name(args.crm), integration_settings, credentials
        )
    _emit({"integration_id": integration_id})
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.local_sync import UnknownIntegration, run_sync

    try:
        summary = run_sync(args.integration_id, args.full)
    except UnknownIntegration as exc:
        raise CliError(str(exc)) from exc
    _emit(summary.to_json())
    return 0 if summary.completed else 1


def cmd_log_prune(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import db, retention

    days = settings.log_retention_days() if args.days is None else settings.retention_days(args.days)
    _emit({"deleted": retention.prune(db.engine(), days).deleted})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.web.app import serve

    serve(args.host, args.port)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from crm_sandbox.server import serve_forever

    serve_forever(args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.demo import run_demo

    return run_demo(
        port=args.port, sandbox_port=args.sandbox_port, dagster_port=args.dagster_port, dagster=not args.no_dagster
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nurturehub", description="NurtureHub CRM sync pipelines")
    sub = p.add_subparsers(dest="command", required=True)

    dbp = sub.add_parser("db", help="the app database").add_subparsers(dest="db_command", required=True)
    dbp.add_parser("upgrade", help="create or migrate the app database").set_defaults(func=cmd_db_upgrade)

    org = sub.add_parser("org", help="organisations").add_subparsers(dest="org_command", required=True)
    create = org.add_parser("create", help="create an organisation and its owner")
    create.add_argument("--name", required=True)
    create.add_argument("--owner-email", required=True)
    create.set_defaults(func=cmd_org_create)

    user = sub.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    add_user = user.add_parser("add", help="add a user to an organisation")
    add_user.add_argument("--org", type=int, required=True)
    add_user.add_argument("--email", required=True)
    add_user.add_argument("--role", required=True, help="owner | admin | member")
    add_user.set_defaults(func=cmd_user_add)

    integ = sub.add_parser("integration", help="CRM integrations").add_subparsers(
        dest="integration_command", required=True
    )
    add_int = integ.add_parser("add", help="connect an organisation to a CRM")
    add_int.add_argument("--org", type=int, required=True)
    add_int.add_argument("--crm", required=True)
    add_int.add_argument("--name")
    add_int.add_argument("--setting", action="append", metavar="K=V")
    add_int.add_argument("--credential", action="append", metavar="K=V")
    add_int.set_defaults(func=cmd_integration_add)

    sync = sub.add_parser("sync", help="run one sync now, in process")
    sync.add_argument("integration_id", type=int)
    sync.add_argument("--full", action="store_true", help="read everything, not just what changed")
    sync.set_defaults(func=cmd_sync)

    log_cmd = sub.add_parser("log", help="the sync history").add_subparsers(dest="log_command", required=True)
    prune = log_cmd.add_parser("prune", help="apply the retention rule now (DESIGN.md, Retention)")
    prune.add_argument("--days", help="keep this many days (default NURTUREHUB_LOG_RETENTION_DAYS, 90)")
    prune.set_defaults(func=cmd_log_prune)

    serve = sub.add_parser("serve", help="the integrations page and its API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    sandbox = sub.add_parser("sandbox", help="the six CRM simulators")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8100)
    sandbox.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser("demo", help="sandbox + demo organisation + Dagster + the page")
    demo.add_argument("--port", type=int, default=8000, help="the page's port")
    demo.add_argument("--sandbox-port", type=int, default=8100)
    demo.add_argument("--dagster-port", type=int, default=3000)
    demo.add_argument("--no-dagster", action="store_true", help="sync once in process instead of running Dagster")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("NURTUREHUB_HOME", str(settings.home()))
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"nurturehub: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # AccountError, IntegrationConfigError: the message says what to change
        print(f"nurturehub: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        if isinstance(exc, OperationalError | ProgrammingError):
            print(f"nurturehub: database error ({exc.orig}); run `nurturehub db upgrade` first?", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
