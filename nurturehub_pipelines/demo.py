"""`nurturehub demo`: the whole system on one laptop, pointed at the CRM sandbox.

It starts the sandbox, makes a demo organisation with one integration per CRM (Street's token is
revoked, so a red card shows; Loop's data has malformed records, so an amber one shows), syncs each
once, then runs `dagster dev` and the page until Ctrl-C. With `--no-dagster` it syncs once and prints
each integration's log instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from sqlalchemy import select

from crm_resources.registry import CRMS, REGISTRY, crm_name
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import crm_sync_log, organisations, users

DEMO_ORG = "Demo Estate Agency"
DEMO_OWNER = "owner@demo-agency.example"
FAILING = {"street": {"api_token": "revoked-street-token"}}  # a red card: Street rejects it


def _sandbox_env(sandbox: SandboxServer) -> None:
    """Point every CRM resource at the sandbox, as a deployment's env would point at the vendors."""
    for key, url in sandbox.base_urls().items():
        if key != "OPENAPI_BASE_URL":
            os.environ[key] = url
    for crm in ("reapit", "alto"):
        os.environ[f"{crm.upper()}_CLIENT_ID"] = SANDBOX_CREDENTIALS[crm]["client_id"]
        os.environ[f"{crm.upper()}_CLIENT_SECRET"] = SANDBOX_CREDENTIALS[crm]["client_secret"]


def _demo_org(sandbox: SandboxServer) -> tuple[int, list[int], str]:
    """The demo organisation (made once) and a fresh admin token to sign in with."""
    with db.engine().begin() as conn:
        org_id = conn.execute(select(organisations.c.id).where(organisations.c.name == DEMO_ORG)).scalar()
        if org_id is None:
            org_id = accounts.create_org(conn, DEMO_ORG, DEMO_OWNER)["org_id"]
            for crm in CRMS:
                cls = REGISTRY[crm]
                given = {**SANDBOX_CREDENTIALS[crm], "base_url": sandbox.base_urls()["OPENAPI_BASE_URL"]}
                integration_settings = {k: given[k] for k in cls.settings_keys}
                credentials = FAILING.get(crm) or {k: given[k] for k in cls.credential_sets[0]}
                accounts.add_integration(conn, org_id, crm, crm_name(crm), integration_settings, credentials)
        viewers = conn.execute(select(users.c.id).where(users.c.org_id == org_id)).all()
        token = accounts.add_user(conn, org_id, f"admin{len(viewers)}@demo-agency.example", "admin")["token"]
        ids = [i.id for i in accounts.list_integrations(conn, org_id)]
    return org_id, ids, token


def _print_logs(ids: list[int]) -> None:
    with db.engine().connect() as conn:
        for integration_id in ids:
            integration = accounts.get_integration(conn, integration_id)
            assert integration is not None
            print(f"\n== {integration.name} (integration {integration_id}) ==")
            rows = conn.execute(
                select(crm_sync_log)
                .where(crm_sync_log.c.integration_id == integration_id)
                .order_by(crm_sync_log.c.id.desc())
                .limit(8)
            ).mappings()
            for row in reversed(list(rows)):
                print(
                    f"{row['occurred_at']:%H:%M:%S}  {row['event_type']:<15} {row['outcome']:<8}"
                    f" {row['records_affected']:>6} written {row['records_skipped']:>3} skipped  {row['message']}"
                )


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    # stdout stays the demo's own (one JSON object); the services' chatter goes to stderr.
    return subprocess.Popen(args, start_new_session=True, stdout=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    from nurturehub_pipelines.cli import _ensure_instance, run_sync

    db.upgrade()
    _ensure_instance()
    with SandboxServer(port=args.sandbox_port) as sandbox:
        _sandbox_env(sandbox)
        SandboxControl(sandbox.root_url).dataset("loop", contacts=250, leads=120, malformed_contacts=2)
        org_id, ids, token = _demo_org(sandbox)
        print(f"Syncing {len(ids)} demo integrations against the sandbox at {sandbox.root_url} …", file=sys.stderr)
        summaries: list[dict[str, Any]] = [run_sync(i, full=True) for i in ids]
        if args.no_dagster:
            _print_logs(ids)
            print(json.dumps({"org_id": org_id, "syncs": [{k: s[k] for k in ("crm", "outcome")} for s in summaries]}))
            return 0
        return _serve(args, token)


def _serve(args: argparse.Namespace, token: str) -> int:
    # Ctrl-C or a plain `kill` stops everything, even where the shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    bin_dir = os.path.dirname(sys.executable)
    dagster = shutil.which("dagster", path=bin_dir) or "dagster"
    subprocess.run([dagster, "instance", "migrate"], check=True, capture_output=True)
    processes = [
        _start([dagster, "dev", "-m", "nurturehub_pipelines.definitions", "-p", str(args.dagster_port)]),
        _start([sys.executable, "-m", "nurturehub_pipelines.cli", "serve", "--port", str(args.port)]),
    ]
    page = f"http://localhost:{args.port}/dashboard/settings/integrations"
    print(
        json.dumps({"page": page, "dagster": f"http://localhost:{args.dagster_port}", "sign_in_token": token}, indent=2)
    )
    print("Sign in on the page with the token above. Ctrl-C stops everything.", file=sys.stderr)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1  # one of them died on its own
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
