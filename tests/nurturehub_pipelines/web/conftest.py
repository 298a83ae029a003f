"""The web app over real loopback HTTP, and a small world to ask it about: two organisations, every role."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import utcnow
from nurturehub_pipelines.web.app import SERVER_OPTIONS, build_app

SECRET_CREDENTIAL = "street-token-TOP-SECRET-do-not-show"


class AppSlot:
    """One server for the whole session; each test plugs in the app built on its own database."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no app plugged in"
        await self.app(scope, receive, send)


@dataclass
class LiveServer:
    slot: AppSlot
    base_url: str


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """uvicorn as `nurturehub serve` runs it (web.app.SERVER_OPTIONS), in a thread of the test process."""
    slot = AppSlot()
    server = uvicorn.Server(
        uvicorn.Config(slot, host="127.0.0.1", port=0, lifespan="off", log_level="warning", **SERVER_OPTIONS)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield LiveServer(slot, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(5)


@dataclass
class World:
    """Organisation A (owner, admin, member; Reapit and Street) and organisation B (owner; Reapit)."""

    base_url: str
    db_url: str
    tokens: dict[str, str]
    emails: dict[str, str]
    a_reapit: int
    a_street: int
    b_reapit: int
    b_error_id: int
    clients: list[httpx.Client] = field(default_factory=list)
    secret: str = SECRET_CREDENTIAL  # the Street integration's API token: must never be shown

    def client(self, who: str | None = None) -> httpx.Client:
        """A client as `who` with a bearer token (None: anonymous)."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, follow_redirects=False, timeout=30)
        self.clients.append(client)
        return client

    def browser(self, who: str) -> tuple[httpx.Client, str]:
        """A client signed in through the form as `who`, with its session's CSRF token."""
        client = self.client()
        answer = client.post("/signin", data={"token": self.tokens[who]})
        assert answer.status_code == 303, answer.text
        page = client.get("/dashboard/settings/integrations")
        match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        return client, match.group(1) if match else ""

    def log(self, integration_id: int, event_type: str, outcome: str, message: str = "", **values: Any) -> int:
        values.setdefault("trigger", "schedule")
        with db.engine(self.db_url).begin() as conn:
            return write_event(
                conn, integration_id=integration_id, event_type=event_type, outcome=outcome, message=message, **values
            )

    def finished_run(self, integration_id: int, outcome: str, at: datetime, message: str = "", run_id: str = "") -> int:
        """The four rows a run writes, its sync_finished last, all ending at `at`."""
        run_id = run_id or f"run-{integration_id}-{at.timestamp()}"
        for step, offset in (("auth_refresh", 3), ("contact_import", 2), ("lead_update", 1)):
            self.log(
                integration_id,
                step,
                "success",
                f"{step} done",
                run_id=run_id,
                records_affected=offset,
                occurred_at=at - timedelta(seconds=offset),
            )
        return self.log(integration_id, "sync_finished", outcome, message, run_id=run_id, occurred_at=at)


@pytest.fixture
def world(db_url: str, live_server: LiveServer) -> Iterator[World]:
    with db.engine(db_url).begin() as conn:
        a = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        admin = accounts.add_user(conn, a["org_id"], "admin@harbour.example", "admin")
        member = accounts.add_user(conn, a["org_id"], "member@harbour.example", "member")
        b = accounts.create_org(conn, "Other Agency", "owner@other.example")
        a_reapit = accounts.add_integration(conn, a["org_id"], "reapit", "Reapit", {"customer_id": "HBR"}, {})
        a_street = accounts.add_integration(
            conn, a["org_id"], "street", "Street lettings", {}, {"api_token": SECRET_CREDENTIAL}
        )
        b_reapit = accounts.add_integration(conn, b["org_id"], "reapit", "Reapit", {"customer_id": "OTH"}, {})
    tokens = {"owner": a["token"], "admin": admin["token"], "member": member["token"], "other_owner": b["token"]}
    emails = {
        "owner": "owner@harbour.example",
        "admin": "admin@harbour.example",
        "member": "member@harbour.example",
        "other_owner": "owner@other.example",
    }
    live_server.slot.app = build_app(db_url)
    w = World(live_server.base_url, db_url, tokens, emails, a_reapit, a_street, b_reapit, 0)
    w.b_error_id = w.log(
        b_reapit,
        "sync_finished",
        "error",
        "Reapit rejected the credentials",
        run_id="b-run",
        occurred_at=utcnow() - timedelta(hours=1),
    )
    yield w
    for client in w.clients:
        client.close()
    live_server.slot.app = None
