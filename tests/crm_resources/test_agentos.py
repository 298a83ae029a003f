"""AgentOS against the sandbox over real loopback HTTP: the contract every CRM meets (crm_contract.py), and its
read-everything-write-what-changed, its 60 s wait and its rate limit."""

from __future__ import annotations

import time

import httpx
import pytest
from crm_clients import CONTACTS, LEADS, PAGE, client, count, integration, read_all, sync
from crm_contract import CrmContract
from sqlalchemy import func, select

from crm_resources.core import CrmError, ErrorKind
from crm_resources.registry import REGISTRY
from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import contacts, sync_cursors


class TestAgentOs(CrmContract):
    CRM = "agentos"


@pytest.mark.parametrize("retry_after,wait", [(None, 60.0), ("7", 7.0)])
def test_agentos_waits_60_s_after_a_429_without_retry_after(
    retry_after: str | None, wait: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With production tuning: a bare 429 waits agentOS's 60 s; a Retry-After is honoured."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    answers = iter(
        [
            httpx.Response(
                429, json={"Message": "slow down"}, headers=dict([("Retry-After", retry_after)] if retry_after else [])
            )
        ]
    )

    def agentos(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json={"Count": 1, "Data": [{"OID": "x"}]})

    res = REGISTRY["agentos"](base_url="http://agentos.test")
    res._transport = httpx.MockTransport(agentos)
    with res.client({"short_name": "s"}, {"api_key": "k"}) as c:
        assert [p.external_id for p in read_all(c, "contacts")] == ["landlord:x", "tenant:x"]
    assert slept == [wait]


def test_agentos_reads_everything_and_writes_only_what_changed(
    db_url: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    control.dataset("agentos", contacts=CONTACTS, leads=LEADS)
    found = integration(db_url, "agentos", sandbox)
    with client("agentos", sandbox, page_size=PAGE) as c:
        first = sync(db_url, found, c, full=False)
        assert first["contact_import"].affected == CONTACTS and first["lead_update"].affected == LEADS

        second = sync(db_url, found, c, full=False)  # nothing changed at agentOS
        assert second["contact_import"].affected == second["lead_update"].affected == 0
        assert second["contact_import"].read == CONTACTS and second["lead_update"].read == LEADS
        assert second["sync_finished"].outcome == "success"

        touched = control.touch("agentos", contacts=3, leads=2)  # new ETags
        gone = control.delete("agentos", contacts=2)  # withdrawn consent: no longer listed
        third = sync(db_url, found, c, full=False)
    changed = set(touched["contacts"]) - set(gone["contacts"])  # a touched record may be deleted too
    assert third["contact_import"].affected == len(changed) + 2 and third["lead_update"].affected == 2
    assert count(db_url, contacts, integration_id=found.id) == CONTACTS
    assert count(db_url, contacts, integration_id=found.id, deleted=True) == 2
    with db.engine(db_url).connect() as conn:
        deleted = set(conn.execute(select(contacts.c.external_id).where(contacts.c.deleted.is_(True))).scalars())
        cursors = conn.execute(select(func.count()).select_from(sync_cursors)).scalar_one()
    assert deleted == set(gone["contacts"])
    assert cursors == 0  # no timestamps, so no cursor: every sync reads everything


def test_agentos_sync_larger_than_one_rate_window_draws_no_429(
    db_url: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    """The published 50/min, scaled down on both sides to 10 per 2 s; the sync needs ~3 windows."""
    control.dataset("agentos", contacts=60, leads=40)
    control.rate_limit("agentos", 10, per_seconds=2.0)
    found = integration(db_url, "agentos", sandbox)
    started = time.monotonic()
    with client("agentos", sandbox, page_size=4, rate_limit_requests=10, rate_limit_per_seconds=2.0) as c:
        steps = sync(db_url, found, c, full=True)
    elapsed = time.monotonic() - started
    log = control.requests("agentos")
    assert steps["sync_finished"].outcome == "success", steps["sync_finished"].message
    assert steps["contact_import"].affected == 60 and steps["lead_update"].affected == 40
    assert len(log) == 1 + 2 * 8 + 2 * 5 >= 25  # the key check, then 30+30 contacts and 20+20 leads by 4
    assert [q["status"] for q in log] == [200] * len(log)  # not one 429 (nor a 403 block)
    assert elapsed >= 2 * 2.0  # the limiter, not luck, kept it inside the window


def test_agentos_stops_on_a_403_after_repeated_429s_and_says_so(
    sandbox: SandboxServer, control: SandboxControl
) -> None:
    """agentOS blocks a key after repeated 429s: the client stops at the 403 rather than hammer it."""
    control.rate_limit("agentos", 1, per_seconds=60.0)
    with client("agentos", sandbox, max_attempts=10, rate_limit_requests=1000, rate_limit_per_seconds=1.0) as c:
        c.authenticate()  # takes the only request of the window
        with pytest.raises(CrmError) as caught:
            read_all(c, "contacts")
    statuses = [q["status"] for q in control.requests("agentos")]
    assert statuses == [200, 429, 429, 429, 403]  # and nothing after the 403
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_at is not None
    assert "agentOS" in caught.value.message and "next attempt at" in caught.value.message
    assert "hammer" in caught.value.message
