"""Hostile and unlucky inputs to a whole sync: a CRM's next link to another server, and stored credentials
that this deployment's key can't read (issue 11). Each fails the sync in words, with its rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dagster import DagsterInstance
from sqlalchemy import select

from crm_resources.core import ErrorKind
from crm_resources.registry import resource_from_env
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import contacts, crm_sync_log
from nurturehub_pipelines.sync.engine import credentials_unreadable
from nurturehub_pipelines.sync.ops import CRM_KEY
from tests.support.http_capture import HttpCapture, Seen

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

REPO = Path(__file__).resolve().parents[3]
TOKEN = "street-token-7c1e-must-stay-home"
FAST = {"timeout_seconds": 2.0, "max_attempts": 2, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
UNREADABLE = "NurtureHub can't read the stored Street credentials — reconnect Street"


def person(number: int) -> dict[str, Any]:
    return {
        "id": f"p{number}",
        "type": "people",
        "attributes": {
            "first_name": "Ann",
            "last_name": f"Lee {number}",
            "email_addresses": [{"value": f"ann{number}@example.com", "primary": True}],
            "telephone_numbers": [],
            "marketing_consent": True,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": f"2024-01-0{number}T00:00:00Z",
        },
    }


@pytest.fixture
def capture() -> Iterator[HttpCapture]:
    with HttpCapture() as server:
        yield server


@pytest.fixture
def street(capture: HttpCapture, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpCapture]:
    """A Street API on loopback whose first page of people links its next page to the capture server."""

    def answer(seen: Seen) -> tuple[int, Any]:
        total = 2 if seen.path == "/open-api/v1/people" else 1
        data = [person(1), person(2)] if total == 2 else []
        links = {"next": f"{capture.url}/open-api/v1/people?page%5Bnumber%5D=2&page%5Bsize%5D=100"}
        pagination = {"total": 4, "count": len(data), "per_page": 100, "current_page": 1, "total_pages": total}
        return 200, {"data": data, "links": links if total == 2 else {}, "meta": {"pagination": pagination}}

    with HttpCapture(answer) as server:
        monkeypatch.setenv("STREET_BASE_URL", f"{server.url}/open-api/v1")
        yield server


def test_a_next_link_to_another_server_fails_the_sync_in_words_and_that_server_gets_nothing(
    db_url: str, street: HttpCapture, capture: HttpCapture
) -> None:
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], "street", "Street", {}, {"api_token": TOKEN})
    with DagsterInstance.ephemeral() as instance:
        result = build_sync_job("street").execute_in_process(
            run_config=run_config(integration_id, full=True),
            tags=run_tags(integration_id, org["org_id"], "street", "sync_now"),
            resources={CRM_KEY: resource_from_env("street", **FAST)},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    assert capture.requests == []  # not a request, so not a credential
    assert street.requests and all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in street.requests)
    with db.engine().connect() as conn:
        rows = conn.execute(select(crm_sync_log).order_by(crm_sync_log.c.id)).mappings().all()
        stored = conn.execute(select(contacts.c.external_id).order_by(contacts.c.external_id)).scalars().all()
    steps = [(r["event_type"], r["outcome"]) for r in rows]
    assert steps == [("auth_refresh", "success"), ("contact_import", "error"), ("sync_finished", "error")]
    message = rows[1]["message"]
    assert message == rows[2]["message"]
    assert message.startswith("Street sent a next link on /people that points to another server")
    assert capture.url in message and "did not follow it" in message and "Traceback" not in message
    assert TOKEN not in message
    assert stored == ["p1", "p2"]  # the page before the link is kept


def test_credentials_unreadable_are_a_rejection_of_the_credentials() -> None:
    error = credentials_unreadable("street")
    assert error.kind is ErrorKind.AUTH and error.message == UNREADABLE


@pytest.mark.parametrize("crm", ["street"])
def test_a_changed_secret_key_fails_at_auth_refresh_in_words_and_exits_1(harness: Harness, tmp_path: Path) -> None:
    harness.control.dataset("street", contacts=5, leads=2)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "NURTUREHUB_SECRET_KEY": "a-different-key"}
    proc = subprocess.run(
        [sys.executable, "-m", "nurturehub_pipelines.cli", "sync", str(harness.integration_id)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["outcome"], summary["message"]) == ("error", UNREADABLE)
    assert [(s["event_type"], s["outcome"], s["message"]) for s in summary["steps"]] == [
        ("auth_refresh", "error", UNREADABLE),
        ("sync_finished", "error", UNREADABLE),
    ]
    assert "InvalidToken" not in proc.stdout and "Traceback" not in proc.stdout
    assert harness.control.requests("street") == []  # nothing was sent to the CRM without its credentials
    assert harness.count("contacts") == 0
