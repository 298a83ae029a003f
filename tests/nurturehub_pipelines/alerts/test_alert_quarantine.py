"""Rejected credentials pause the schedule: three auth failures alert and quarantine; a completed sync lifts it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crm_resources.core import CrmError, ErrorKind
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change, paused_reason, schedulable
from nurturehub_pipelines.store.tables import integrations
from nurturehub_pipelines.sync.engine import StepFailed, SyncSession
from tests.support.alert_world import AlertLoop, Org, outbox
from tests.support.smtp_capture import SmtpCapture


class Client:
    """The CRM client as the engine sees it at auth_refresh: it refuses with `error`, or lets the sync in."""

    requests_made = 0

    def __init__(self, error: CrmError | None) -> None:
        self.error = error

    def authenticate(self) -> str:
        if self.error:
            raise self.error
        return "Authenticated"


def sync(integration_id: int, error: CrmError | None = None) -> None:
    """One sync through the engine: a failure at auth_refresh, or a completed (empty) sync."""
    with db.engine().connect() as conn:
        integration = accounts.get_integration(conn, integration_id)
    assert integration is not None
    client: Any = Client(error)
    session = SyncSession(db.engine(), integration, client, run_id=None, trigger="sync_now", full=True)
    try:
        auth = session.auth_refresh()
    except StepFailed:
        return
    session.finish([auth])


def state(integration_id: int) -> tuple[str | None, str | None]:
    """(last_failure_kind, paused_reason) of the integration."""
    with db.engine().connect() as conn:
        row = conn.execute(select(integrations).where(integrations.c.id == integration_id)).one()
    return row.last_failure_kind, paused_reason(row.enabled, row.paused_by, row.quarantine_reason)


def scheduled(crm: str = "street") -> set[int]:
    with db.engine().connect() as conn:
        return {integration_id for integration_id, _ in schedulable(conn, crm)}


REJECTED = CrmError(ErrorKind.AUTH, "Street rejected the credentials: reconnect Street")
RATE_LIMITED = CrmError(ErrorKind.RATE_LIMIT, "Street rate limit: next attempt at 14:05")


@pytest.fixture
def street(org: Org) -> int:
    return org.integration(crm="street", name="Street")


def test_three_credential_rejections_alert_and_quarantine(street: int, smtp: SmtpCapture, loop: AlertLoop) -> None:
    for _ in range(2):
        sync(street, REJECTED)
    loop.tick()
    assert state(street) == ("auth", None) and street in scheduled()  # no alert yet: the schedule runs on
    sync(street, REJECTED)
    loop.tick()
    assert len(smtp.wait_for(1)) == 1  # the alert still goes out on the 3rd failure
    assert state(street) == ("auth", "Waiting for new Street credentials: Street rejected the last ones")
    assert street not in scheduled()
    loop.tick()  # evaluating again changes nothing
    assert street not in scheduled() and len(outbox()) == 1


def test_rate_limit_failures_alert_without_quarantine(street: int, smtp: SmtpCapture, loop: AlertLoop) -> None:
    for _ in range(3):
        sync(street, RATE_LIMITED)
    loop.tick()
    assert len(smtp.wait_for(1)) == 1
    assert state(street) == ("rate_limit", None) and street in scheduled()


def test_a_crash_after_rejections_is_not_a_rejection(street: int, smtp: SmtpCapture, loop: AlertLoop) -> None:
    sync(street, REJECTED)
    sync(street, REJECTED)
    with db.engine().connect() as conn:
        integration = accounts.get_integration(conn, street)
    assert integration is not None
    client: Any = Client(None)
    client.authenticate = lambda: 1 / 0  # a bug inside NurtureHub: kind `internal`
    with pytest.raises(StepFailed):
        SyncSession(db.engine(), integration, client, run_id=None, trigger="schedule", full=False).auth_refresh()
    loop.tick()
    assert len(smtp.wait_for(1)) == 1
    assert state(street) == ("internal", None) and street in scheduled()


def test_a_completed_sync_lifts_the_quarantine(street: int, smtp: SmtpCapture, loop: AlertLoop) -> None:
    for _ in range(3):
        sync(street, REJECTED)
    loop.tick()
    assert street not in scheduled()
    sync(street)  # a Sync Now that succeeded
    assert state(street) == (None, None) and street in scheduled()
    loop.tick()
    assert [row["kind"] for row in outbox()] == ["failure", "recovered"]


def test_a_reconnect_lifts_the_quarantine(street: int, smtp: SmtpCapture, loop: AlertLoop) -> None:
    for _ in range(3):
        sync(street, REJECTED)
    loop.tick()
    assert street not in scheduled()
    with db.engine().begin() as conn:
        apply_change(conn, street, IntegrationChange(credentials={"api_token": "a-new-token"}), "owner@harbour.example")
    assert street in scheduled() and state(street)[1] is None
