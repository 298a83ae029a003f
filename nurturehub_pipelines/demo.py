"""`nurturehub demo`: the whole system on one laptop, pointed at the CRM sandbox.

It starts the sandbox, makes a demo organisation with one integration per CRM (Street's token is
revoked, so a red card shows; Loop's data has malformed records, so an amber one shows), syncs each
once, then runs `dagster dev` and the page until Ctrl-C. With `dagster=False` (`--no-dagster`) it syncs
once and prints each integration's log instead.

The terminal is for a newcomer: a line per CRM, then the URLs and the token, last. Dagster's own output
(the syncs' event logs, `dagster dev`'s daemon and webserver) goes to files under `.nurturehub/logs/`
that the demo names; stdout carries one JSON object for scripts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import select

from crm_resources.registry import CRMS, REGISTRY, crm_name
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines import settings
from nurturehub_pipelines.instance import ensure_embedded_instance
from nurturehub_pipelines.local_sync import SyncSummary, run_sync
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.sync_log import newest_first
from nurturehub_pipelines.store.tables import crm_sync_log, organisations, users

DEMO_ORG = "Demo Estate Agency"
DEMO_OWNER = "owner@demo-agency.example"
FAILING = {"street": {"api_token": "revoked-street-token"}}  # a red card: Street rejects it
READY_TIMEOUT = 180.0  # `dagster dev` loads the code location twice; on 2 busy cores that takes a while
STOP_TIMEOUT = 20.0


def log_dir() -> Path:
    path = settings.home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def say(message: str = "", end: str = "\n") -> None:
    """The newcomer's terminal: stderr, so stdout stays one JSON object."""
    print(message, end=end, file=sys.stderr, flush=True)


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


def outcome_line(summary: SyncSummary) -> str:
    """One CRM's first sync in words; a red or amber one says why."""
    counts = f"{summary.written:>5,} written {summary.skipped:>3,} skipped"
    line = f"{summary.outcome:<8}{counts}"
    return line if summary.outcome == "success" else f"{line}  {summary.message}"


def _first_syncs(ids: list[int], dagster_log: Path) -> list[SyncSummary]:
    """Each demo integration synced once, in process, a line per CRM as it finishes."""
    summaries = []
    width = max(len(crm_name(crm)) for crm in CRMS)
    for integration_id in ids:
        with db.engine().connect() as conn:
            integration = accounts.get_integration(conn, integration_id)
        assert integration is not None
        say(f"  {integration.name:<{width}}  ", end="")
        summary = run_sync(integration_id, full=True, log_file=dagster_log)
        say(outcome_line(summary))
        summaries.append(summary)
    return summaries


def _print_logs(ids: list[int]) -> None:
    with db.engine().connect() as conn:
        for integration_id in ids:
            integration = accounts.get_integration(conn, integration_id)
            assert integration is not None
            print(f"\n== {integration.name} (integration {integration_id}) ==")
            rows = conn.execute(
                select(crm_sync_log)
                .where(crm_sync_log.c.integration_id == integration_id)
                .order_by(*newest_first())
                .limit(8)
            ).mappings()
            for row in reversed(list(rows)):
                print(
                    f"{row['occurred_at']:%H:%M:%S}  {row['event_type']:<15} {row['outcome']:<8}"
                    f" {row['records_affected']:>6} written {row['records_skipped']:>3} skipped  {row['message']}"
                )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(argv: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A session of its own (stopped as a group); its chatter goes to its log file, not the terminal."""
    return subprocess.Popen(
        argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _wait_until_serving(processes: dict[str, subprocess.Popen[bytes]], urls: dict[str, str]) -> str | None:
    """Wait until every service answers (the URLs are only worth printing then); the name of one that died."""
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = dict(urls)
    while waiting and time.monotonic() < deadline:
        dead = next((name for name, proc in processes.items() if proc.poll() is not None), None)
        if dead:
            return dead
        waiting = {name: url for name, url in waiting.items() if not _answers(url)}
        time.sleep(0.5 if waiting else 0)
    for name in waiting:
        say(f"{name} is still starting after {READY_TIMEOUT:.0f} s; it will answer at its URL when it is up.")
    return None


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every group, then SIGKILL what is left after STOP_TIMEOUT; a second Ctrl-C can't cut it short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for proc in processes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve(*, port: int, dagster_port: int, token: str) -> int:
    """`dagster dev` and the page until Ctrl-C; the URLs and the token are the last thing printed."""
    dagster_log, web_log = log_dir() / "dagster.log", log_dir() / "web.log"
    dagster = shutil.which("dagster", path=os.path.dirname(sys.executable)) or "dagster"
    page, dagster_ui = f"http://localhost:{port}{settings.PAGE_PATH}", f"http://localhost:{dagster_port}"
    say("Starting Dagster (daemon and UI) and the page …")
    with open(dagster_log, "ab") as dagster_out, open(web_log, "ab") as web_out:
        migrated = subprocess.run([dagster, "instance", "migrate"], stdout=dagster_out, stderr=subprocess.STDOUT)
        if migrated.returncode != 0:
            say(f"`dagster instance migrate` failed; see {dagster_log}")
            return 1
        processes = {
            "Dagster": _start(
                [dagster, "dev", "-m", "nurturehub_pipelines.definitions", "-p", str(dagster_port)], dagster_out
            ),
            "The page": _start(
                [sys.executable, "-m", "nurturehub_pipelines.cli", "serve", "--port", str(port)], web_out
            ),
        }
        logs = {"Dagster": dagster_log, "The page": web_log}
        try:
            urls = {
                "Dagster": f"http://127.0.0.1:{dagster_port}/server_info",
                "The page": f"http://127.0.0.1:{port}{settings.PAGE_PATH}",
            }
            dead = _wait_until_serving(processes, urls)
            if dead is None:
                print(json.dumps({"page": page, "dagster": dagster_ui, "sign_in_token": token}), flush=True)
                say(
                    "\nReady. Open the page and sign in with the token:\n"
                    f"  page        {page}\n"
                    f"  token       {token}\n"
                    f"  Dagster UI  {dagster_ui}\n"
                    f"  logs        {dagster_log} (Dagster), {web_log} (the page)\n"
                    "Ctrl-C stops everything."
                )
                while all(proc.poll() is None for proc in processes.values()):
                    time.sleep(0.5)
                dead = next(name for name, proc in processes.items() if proc.poll() is not None)
            say(f"{dead} stopped on its own; see {logs[dead]}. Stopping the rest.")
            return 1
        finally:
            _stop(list(processes.values()))


def run_demo(*, port: int, sandbox_port: int, dagster_port: int, dagster: bool = True) -> int:
    # Ctrl-C or a plain `kill` stops everything, even where the shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # Dagster reads telemetry's on/off switch from dagster.yaml only; this at least keeps anything from leaving.
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
    dagster_log = log_dir() / "dagster.log"
    try:
        say(f"NurtureHub demo: data in {settings.home()}; Dagster's own logs in {dagster_log}")
        db.upgrade()
        ensure_embedded_instance()
        with SandboxServer(port=sandbox_port) as sandbox:
            _sandbox_env(sandbox)
            SandboxControl(sandbox.root_url).dataset("loop", contacts=250, leads=120, malformed_contacts=2)
            org_id, ids, token = _demo_org(sandbox)
            say(f"First sync of the demo organisation's {len(ids)} integrations (CRM sandbox at {sandbox.root_url}):")
            summaries = _first_syncs(ids, dagster_log)
            if not dagster:
                _print_logs(ids)
                syncs = [{"crm": s.crm, "outcome": s.outcome} for s in summaries]
                print(json.dumps({"org_id": org_id, "syncs": syncs}))
                return 0
            return _serve(port=port, dagster_port=dagster_port, token=token)
    except KeyboardInterrupt:
        say("\nStopped.")
        return 0
