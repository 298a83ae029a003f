"""The `nurturehub` command. Commands print one JSON object; refusals go to stderr, non-zero, nothing written.

Every command checks its input before it writes (DESIGN.md, "Input rules"): the store's writers check
names and emails (store/validation), `K=V` pairs are checked here, and each change runs in one transaction,
so a refusal found late still writes nothing. A value that may be a credential is never echoed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from nurturehub_pipelines import settings

# Who paused an integration from the command line, as its card says it: "Paused by an operator (command line)".
CLI_ACTOR = "an operator (command line)"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse echoes stray words and bad values; one of them may be a credential, so those are not shown."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = "unrecognized arguments (not shown: one may be a credential); --credential takes KEY=VALUE"
        message = re.sub(r"(invalid \w+ value): .*", r"\1 (not shown)", message)
        super().error(message)


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    """`--setting`/`--credential` K=V pairs; a malformed one is named by position, never by its value."""
    pairs: dict[str, str] = {}
    for number, item in enumerate(values or (), start=1):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--{what} number {number} is not KEY=VALUE (its value is not shown)")
        if key in pairs:
            raise CliError(f"--{what} {key} is given twice")
        pairs[key] = value
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


def cmd_integration_list(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db
    from nurturehub_pipelines.store.integration_changes import paused_reason
    from nurturehub_pipelines.store.secrets import CredentialsUnreadable

    listed = []
    with db.engine().connect() as conn:
        if args.org is not None:
            accounts.require_org(conn, args.org)
        found = accounts.list_integrations(conn, args.org)
    for integration in found:
        try:  # decrypted only to name the credentials; their values go no further
            names: list[str] | None = sorted(integration.credentials())
        except CredentialsUnreadable:
            names = None
            print(
                f"nurturehub: integration {integration.id}: the stored credentials can't be read with this "
                f"secret key; reconnect it with `nurturehub integration update {integration.id} --credential …`",
                file=sys.stderr,
            )
        listed.append(
            {
                "integration_id": integration.id,
                "org_id": integration.org_id,
                "crm": integration.crm,
                "name": integration.name,
                "enabled": integration.enabled,
                "paused_reason": paused_reason(
                    integration.enabled, integration.paused_by, integration.quarantine_reason
                ),
                "settings": integration.settings,
                "credentials": names,  # names only; null when they can't be read
                "credentials_readable": names is not None,
            }
        )
    _emit({"integrations": listed})
    return 0


def cmd_integration_update(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import db
    from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change

    change = IntegrationChange(
        name=args.name,
        settings=None if args.setting is None else _pairs(args.setting, "setting"),
        credentials=None if args.credential is None else _pairs(args.credential, "credential"),
    )
    if change.name is None and not change.reconnects:
        raise CliError("nothing to change: give --name, --setting K=V or --credential K=V")
    with db.engine().begin() as conn:
        apply_change(conn, args.integration_id, change, CLI_ACTOR)
    _emit({"integration_id": args.integration_id})
    return 0


def cmd_integration_enabled(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import db
    from nurturehub_pipelines.store.integration_changes import set_enabled

    with db.engine().begin() as conn:
        integration = set_enabled(conn, args.integration_id, args.enabled, CLI_ACTOR)
    if integration.enabled and integration.quarantine_reason:
        print(f"nurturehub: scheduled syncs stay stopped: {integration.quarantine_reason}", file=sys.stderr)
    _emit({"integration_id": integration.id, "enabled": integration.enabled})
    return 0


def cmd_integration_remove(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import db
    from nurturehub_pipelines.store.integration_changes import remove

    with db.engine().begin() as conn:
        remove(conn, args.integration_id)
    _emit({"integration_id": args.integration_id, "removed": True})
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db

    with db.engine().connect() as conn:
        found = accounts.list_users(conn, args.org)
    _emit({"users": [{"user_id": u.id, "email": u.email, "role": u.role} for u in found]})
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db

    with db.engine().begin() as conn:
        accounts.remove_user(conn, args.user_id)
    _emit({"user_id": args.user_id, "removed": True})
    return 0


def cmd_token_rotate(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.store import accounts, db

    with db.engine().begin() as conn:
        token = accounts.rotate_token(conn, args.user)
    _emit({"user_id": args.user, "token": token})
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
    p = _Parser(prog="nurturehub", description="NurtureHub CRM sync pipelines")
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
    list_users = user.add_parser("list", help="the users of an organisation")
    list_users.add_argument("--org", type=int, required=True)
    list_users.set_defaults(func=cmd_user_list)
    remove_user = user.add_parser("remove", help="remove a user: their token and sessions stop working at once")
    remove_user.add_argument("user_id", type=int, metavar="ID")
    remove_user.set_defaults(func=cmd_user_remove)

    token = sub.add_parser("token", help="sign-in tokens").add_subparsers(dest="token_command", required=True)
    rotate = token.add_parser("rotate", help="a new token for a user; the old one and its sessions stop working")
    rotate.add_argument("--user", type=int, required=True)
    rotate.set_defaults(func=cmd_token_rotate)

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
    list_int = integ.add_parser("list", help="integrations: settings and credential names, never their values")
    list_int.add_argument("--org", type=int)
    list_int.set_defaults(func=cmd_integration_list)
    update_int = integ.add_parser("update", help="rename or reconnect: settings merge, credentials replace the set")
    update_int.add_argument("integration_id", type=int, metavar="ID")
    update_int.add_argument("--name")
    update_int.add_argument("--setting", action="append", metavar="K=V")
    update_int.add_argument("--credential", action="append", metavar="K=V")
    update_int.set_defaults(func=cmd_integration_update)
    for verb, enabled, says in (("disable", False, "pause"), ("enable", True, "resume")):
        toggle = integ.add_parser(verb, help=f"{says} its scheduled syncs (Sync Now still works)")
        toggle.add_argument("integration_id", type=int, metavar="ID")
        toggle.set_defaults(func=cmd_integration_enabled, enabled=enabled)
    remove_int = integ.add_parser("remove", help="delete the integration and everything stored for it")
    remove_int.add_argument("integration_id", type=int, metavar="ID")
    remove_int.set_defaults(func=cmd_integration_remove)

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
