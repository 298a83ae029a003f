"""The `nurturehub` command for tests: run in process (fast) or as a subprocess (as a user runs it), a
world with a row of every kind for each integration and user, and every table's rows to compare."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from nurturehub_pipelines.cli import main
from nurturehub_pipelines.store import accounts, db, sessions
from nurturehub_pipelines.store.tables import (
    alert_outbox,
    contacts,
    crm_sync_log,
    leads,
    metadata,
    notifications,
    skipped_records,
    sync_cursors,
    sync_requests,
    utcnow,
)

REPO = Path(__file__).resolve().parents[2]
STREET_TOKEN = "street-SECRET-token-7f3a9c"  # credential values that must never be printed
LOOP_KEY = "loop-SECRET-key-51be02"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def refused(self) -> str:
        """A refusal: non-zero, nothing on stdout, the reason on stderr (returned)."""
        assert self.code != 0 and self.out == "", (self.code, self.out, self.err)
        assert self.err.strip(), "a refusal says why"
        return self.err


def run(*args: str) -> Ran:
    """`nurturehub ARGS` in this process, with this test's environment (argparse's exits included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue())


def nurturehub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a real subprocess, JSON on stdout, refusals on stderr."""
    return subprocess.run(
        [sys.executable, "-m", "nurturehub_pipelines.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
    )


def run_process(*args: str, env: dict[str, str] | None = None) -> Ran:
    """`nurturehub ARGS` as a separate process."""
    done = nurturehub(*args, env=env)
    return Ran(done.returncode, done.stdout, done.stderr)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: equal before and after means nothing was written."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine().connect() as conn:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(row) for row in conn.execute(select(table).order_by(*order))]
    return rows


@dataclass(frozen=True)
class World:
    """Two organisations; Harbour has an owner, an admin and a member, Street (credentials) and Reapit."""

    harbour: int
    quay: int
    owner: dict[str, Any]
    admin: dict[str, Any]
    member: dict[str, Any]
    quay_owner: dict[str, Any]
    street: int
    reapit: int
    loop: int  # Quay's
    cookies: dict[int, str]  # a live browser session per user id


def build_world() -> World:
    """Rows of every kind for every integration (contacts to notifications) and a session per user."""
    now = utcnow()
    with db.engine().begin() as conn:
        harbour = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        quay = accounts.create_org(conn, "Quay Estates", "owner@quay.example")
        admin = accounts.add_user(conn, harbour["org_id"], "admin@harbour.example", "admin")
        member = accounts.add_user(conn, harbour["org_id"], "member@harbour.example", "member")
        street = accounts.add_integration(conn, harbour["org_id"], "street", "Street", {}, {"api_token": STREET_TOKEN})
        reapit = accounts.add_integration(conn, harbour["org_id"], "reapit", "Reapit", {"customer_id": "HBR"}, {})
        loop = accounts.add_integration(conn, quay["org_id"], "loop", "Loop", {}, {"api_key": LOOP_KEY})
        users = {
            harbour["owner_user_id"]: harbour["org_id"],
            admin["user_id"]: harbour["org_id"],
            member["user_id"]: harbour["org_id"],
            quay["owner_user_id"]: quay["org_id"],
        }
        cookies = {uid: sessions.open_session(conn, uid, now, timedelta(hours=12)) for uid in users}
        owners = {street: harbour["org_id"], reapit: harbour["org_id"], loop: quay["org_id"]}
        for integration_id, org_id in owners.items():
            record = {"integration_id": integration_id, "raw": {}, "content_hash": "h", "synced_at": now}
            conn.execute(insert(contacts).values(external_id=f"c{integration_id}", **record))
            conn.execute(insert(leads).values(external_id=f"l{integration_id}", **record))
            conn.execute(insert(sync_cursors).values(integration_id=integration_id, stream="contacts", high_water=now))
            conn.execute(
                insert(skipped_records).values(integration_id=integration_id, stream="leads", reason="malformed")
            )
            conn.execute(
                insert(sync_requests).values(
                    id=f"req-{integration_id}", integration_id=integration_id, trigger="sync_now", status="finished"
                )
            )
            conn.execute(
                insert(crm_sync_log).values(
                    integration_id=integration_id, trigger="schedule", event_type="sync_finished", outcome="error"
                )
            )
            conn.execute(
                insert(alert_outbox).values(
                    dedupe_key=f"failure:{integration_id}",
                    org_id=org_id,
                    integration_id=integration_id,
                    kind="failure",
                    to_email="owner@example",
                    subject="s",
                    body="b",
                )
            )
            for uid, user_org in users.items():
                if user_org == org_id:
                    conn.execute(
                        insert(notifications).values(
                            org_id=org_id, user_id=uid, integration_id=integration_id, kind="failure", message="m"
                        )
                    )
    return World(
        harbour=harbour["org_id"],
        quay=quay["org_id"],
        owner={"user_id": harbour["owner_user_id"], "token": harbour["token"]},
        admin=admin,
        member=member,
        quay_owner={"user_id": quay["owner_user_id"], "token": quay["token"]},
        street=street,
        reapit=reapit,
        loop=loop,
        cookies=cookies,
    )
