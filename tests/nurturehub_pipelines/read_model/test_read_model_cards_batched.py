"""An organisation's cards on PostgreSQL: one statement, the same cards as card() by card()."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from read_model_log import NOW, log, log_plans
from sqlalchemy import Connection, event, text, update

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store import accounts, sync_requests
from nurturehub_pipelines.store.tables import integrations


def _varied_org(conn: Connection, size: int) -> int:
    """An organisation of `size` integrations cycling through every health, streaks, errors and requests."""
    org = accounts.create_org(conn, f"Org of {size}", f"owner{size}@org.example")["org_id"]
    for n in range(size):
        iid = accounts.add_integration(conn, org, "reapit", f"Office {n}", {"customer_id": f"O{n}"}, {})
        match n % 8:
            case 0:  # red, a streak longer than the fetched failures, a pending request
                log(conn, iid, "sync_finished", "success", 30)
                for hours in range(7):
                    log(conn, iid, "sync_finished", "error", 7 - hours, message=f"failed {hours}")
                sync_requests.create(conn, iid, "retry", "owner@org.example", NOW)
            case 1:  # green, a refusal among its errors, a scheduled run writing rows
                log(conn, iid, "sync_finished", "error", 5)
                log(conn, iid, "sync_requested", "error", 4, message="Sync Now refused: Reapit rate limit")
                log(conn, iid, "sync_finished", "success", 3, run_id="r1")
                log(conn, iid, "contact_import", "success", 0.5, run_id="r2")
            case 2:  # amber, launched and its run finished
                log(conn, iid, "sync_finished", "warning", 1, records_skipped=3, message="", run_id=f"w{n}")
                request = sync_requests.create(conn, iid, "sync_now", "owner@org.example", NOW)
                sync_requests.mark_launched(conn, request, NOW)
                sync_requests.set_run_id(conn, request, f"w{n}")
            case 3:  # stale, launched without a run id yet
                log(conn, iid, "sync_finished", "success", 9)
                sync_requests.mark_launched(conn, sync_requests.create(conn, iid, "retry", None, NOW), NOW)
            case 4:  # pending, an expired request
                sync_requests.create(conn, iid, "sync_now", None, NOW - timedelta(hours=25))
            case 5:  # red after a warning, 2 failures, a run's last row its sync_finished
                log(conn, iid, "sync_finished", "warning", 4)
                log(conn, iid, "sync_finished", "error", 2, run_id="r3")
                log(conn, iid, "auth_refresh", "error", 1, run_id="r4")
                log(conn, iid, "sync_finished", "error", 1, run_id="r4")
            case 6:  # never completed: 5 failures exactly, disabled
                for hours in range(5):
                    log(conn, iid, "sync_finished", "error", 5 - hours)
                conn.execute(update(integrations).where(integrations.c.id == iid).values(enabled=False))
            case 7:  # ties broken by id, a dead run outside the activity window
                log(conn, iid, "contact_import", "success", 7, run_id="r5")
                log(conn, iid, "sync_finished", "success", 1)
                log(conn, iid, "sync_finished", "error", 1, message="later row, same instant")
    return org


def test_an_organisations_cards_take_the_same_statements_whatever_its_size(conn: Connection) -> None:
    """On PostgreSQL the cards come in a fixed number of statements, equal to card() by card()."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, params))

    counts = []
    for size in (2, 8):
        org = _varied_org(conn, size)
        one_by_one = [read_model.card(conn, ref, NOW) for ref in read_model.integration_refs(conn, org)]
        statements.clear()
        event.listen(conn.engine, "before_cursor_execute", capture)
        try:
            result = read_model.cards(conn, org, NOW)
        finally:
            event.remove(conn.engine, "before_cursor_execute", capture)
        assert result == one_by_one
        counts.append(len(statements))
    assert {card.health for card in result} == {"green", "amber", "red", "pending"}
    assert [card.consecutive_failures for card in result] == [7, 0, 0, 0, 0, 2, 5, 1]
    assert [card.sync_in_progress for card in result] == [True, True, False, True, False, False, False, False]
    assert result[3].health_reason == "No sync has completed since 03:00"
    assert [len(card.recent_errors) for card in result] == [5, 2, 0, 0, 0, 2, 5, 1]
    if conn.dialect.name == "postgresql":
        assert counts == [1, 1], counts  # the integrations with their summaries and their active requests
        conn.execute(text("ANALYZE crm_sync_log"))
        for plan in log_plans(conn, statements):
            lowered = plan.lower()
            # The one sort allowed is of the organisation's own integrations, into id order: never of log rows.
            unsorted = re.sub(r"sort  \(cost=[^\n]*\n\s*sort key: integrations\.id\n", "", lowered)
            assert "seq scan" not in lowered and "sort" not in unsorted.split("\n", 1)[1], plan
