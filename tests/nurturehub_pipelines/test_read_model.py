"""The cards and the log as DESIGN.md gives them, from crm_sync_log rows written with explicit times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, text, update

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import Card
from nurturehub_pipelines.store import accounts, db, sync_requests
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import integrations

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # GMT: London time is UTC time


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with db.engine(db_url).begin() as connection:
        yield connection


@pytest.fixture
def iid(conn: Connection) -> int:
    org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
    return accounts.add_integration(conn, org["org_id"], "reapit", "Reapit", {"customer_id": "HBR"}, {})


def log(conn: Connection, iid: int, event_type: str, outcome: str, hours_ago: float, **values: Any) -> int:
    values.setdefault("message", f"{event_type} {outcome}")
    values.setdefault("trigger", "schedule")
    return write_event(
        conn,
        integration_id=iid,
        event_type=event_type,
        outcome=outcome,
        occurred_at=NOW - timedelta(hours=hours_ago),
        **values,
    )


def card(conn: Connection, iid: int, now: datetime = NOW) -> Card:
    ref = read_model.integration_ref(conn, iid)
    assert ref is not None
    return read_model.card(conn, ref, now)


def test_never_synced_is_pending(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_requested", "success", 1, message="Sync Now requested by owner@harbour.example")
    result = card(conn, iid)
    assert (result.health, result.health_reason, result.last_synced_at) == ("pending", "Not synced yet", None)
    assert result.consecutive_failures == 0 and result.recent_errors == ()
    assert result.to_json()["name"] == result.to_json()["crm_name"] == "Reapit"


def test_green_amber_red_follow_the_latest_finished_sync(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 3)
    green = card(conn, iid)
    assert (green.health, green.health_reason) == ("green", None)
    assert green.last_synced_at == NOW - timedelta(hours=3)

    log(conn, iid, "sync_finished", "warning", 2, message="4 contacts skipped: no email or phone", records_skipped=4)
    amber = card(conn, iid)
    assert (amber.health, amber.health_reason) == ("amber", "4 contacts skipped: no email or phone")
    assert amber.last_synced_at == NOW - timedelta(hours=2)

    failure = "Reapit rejected NurtureHub's credentials — reconnect Reapit in your CRM settings"
    log(conn, iid, "auth_refresh", "error", 1, message=failure, run_id="r1")
    log(conn, iid, "sync_finished", "error", 1, message=failure, run_id="r1")
    red = card(conn, iid)
    assert (red.health, red.health_reason) == ("red", failure)
    assert red.last_synced_at == NOW - timedelta(hours=2)  # the last *completed* sync
    assert red.consecutive_failures == 1


def test_rows_written_outside_a_run_count(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 1, run_id=None, trigger="manual")
    assert card(conn, iid).health == "green"


def test_no_completed_sync_for_8_hours_is_red_and_says_since_when(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 9)  # 03:00
    stale = card(conn, iid)
    assert (stale.health, stale.health_reason) == ("red", "No sync has completed since 03:00")
    assert stale.last_synced_at == NOW - timedelta(hours=9)
    assert card(conn, iid, NOW - timedelta(hours=1, seconds=1)).health == "green"  # 7 h 59 min 59 s
    yesterday = card(conn, iid, NOW + timedelta(days=1))
    assert yesterday.health_reason == "No sync has completed since 03:00 on 3 March"


def test_staleness_is_told_in_london_time(conn: Connection, iid: int) -> None:
    summer = datetime(2026, 7, 1, 20, 0, tzinfo=UTC)
    write_event(
        conn, integration_id=iid, event_type="sync_finished", outcome="warning", message="", trigger="schedule",
        occurred_at=summer - timedelta(hours=10), records_skipped=2,
    )  # fmt: skip
    assert card(conn, iid, summer).health_reason == "No sync has completed since 11:00"  # 10:00 UTC is 11:00 BST


def test_consecutive_failures_count_only_failed_syncs_since_the_last_completed_one(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "error", 10)
    log(conn, iid, "sync_finished", "success", 9)
    for hours in (7, 5, 3):
        log(conn, iid, "sync_finished", "error", hours)
    log(conn, iid, "sync_requested", "error", 2, message="Sync Now refused: Reapit rate limit")  # not a sync
    log(conn, iid, "contact_import", "error", 3)  # a step, not a sync
    assert card(conn, iid).consecutive_failures == 3
    log(conn, iid, "sync_finished", "warning", 1)
    assert card(conn, iid).consecutive_failures == 0


def test_ties_on_time_are_broken_by_id(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 1)
    log(conn, iid, "sync_finished", "error", 1, message="later row, same instant")
    same = card(conn, iid)
    assert (same.health, same.consecutive_failures) == ("red", 1)
    assert [e.message for e in read_model.log_events(conn, iid, 2)] == [
        "later row, same instant",
        "sync_finished success",
    ]


def test_recent_errors_are_the_5_newest_failed_syncs_and_refusals(conn: Connection, iid: int) -> None:
    ids = [
        log(conn, iid, "sync_finished", "error", 8, message="oldest"),
        log(conn, iid, "sync_requested", "error", 7, message="refused 1"),
        log(conn, iid, "sync_finished", "error", 6, message="failed 2"),
        log(conn, iid, "sync_requested", "error", 5, message="refused 2"),
        log(conn, iid, "sync_finished", "error", 4, message="failed 3"),
        log(conn, iid, "sync_finished", "error", 3, message="newest"),
    ]
    log(conn, iid, "lead_update", "error", 2, message="a step error is not listed")
    log(conn, iid, "sync_finished", "success", 1)
    errors = card(conn, iid).to_json()["recent_errors"]
    assert [e["log_id"] for e in errors] == ids[:0:-1]
    assert errors[0] == {
        "log_id": ids[-1],
        "occurred_at": (NOW - timedelta(hours=3)).isoformat(),
        "event_type": "sync_finished",
        "message": "newest",
    }


def test_sync_in_progress_follows_the_request_and_its_run(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 2)
    assert not card(conn, iid).sync_in_progress
    request_id = sync_requests.create(conn, iid, "sync_now", "owner@harbour.example", NOW)
    assert card(conn, iid).sync_in_progress  # requested
    sync_requests.mark_launched(conn, request_id, NOW)
    assert card(conn, iid).sync_in_progress  # queued: no run id known yet
    sync_requests.set_run_id(conn, request_id, "run-a")
    log(conn, iid, "auth_refresh", "success", 0, run_id="run-a", trigger="sync_now")
    running = card(conn, iid)
    assert running.sync_in_progress and running.health == "green"  # syncing does not change the badge
    log(conn, iid, "sync_finished", "success", 0, run_id="run-a", trigger="sync_now")
    assert not card(conn, iid).sync_in_progress  # before the sensor even closes the request
    assert sync_requests.settle(conn, iid, NOW) is None
    assert sync_requests.active_request(conn, iid) is None


def test_a_scheduled_run_writing_rows_is_in_progress(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 4, run_id="run-1")
    log(conn, iid, "auth_refresh", "success", 0.1, run_id="run-2")
    log(conn, iid, "sync_requested", "error", 0, message="Sync Now refused: Reapit rate limit")
    assert card(conn, iid).sync_in_progress
    log(conn, iid, "sync_finished", "error", 0, run_id="run-2")
    assert not card(conn, iid).sync_in_progress
    log(conn, iid, "contact_import", "success", 7, run_id="run-0")  # a dead run, outside the window
    assert not card(conn, iid, NOW).sync_in_progress


def test_requests_stop_counting_once_expired(conn: Connection, iid: int) -> None:
    sync_requests.create(conn, iid, "sync_now", "owner@harbour.example", NOW - timedelta(hours=25))
    assert not card(conn, iid).sync_in_progress
    assert sync_requests.settle(conn, iid, NOW) is None  # expired, so a new request may be made


def test_next_sync_at_follows_the_schedule_in_london(
    conn: Connection, iid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    summer = datetime(2026, 7, 1, 10, 30, tzinfo=UTC)  # 11:30 BST
    assert card(conn, iid, summer).next_sync_at == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)  # 12:00 BST
    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", "15 2 * * *")
    assert card(conn, iid, NOW).next_sync_at == datetime(2026, 3, 4, 2, 15, tzinfo=UTC)
    conn.execute(update(integrations).where(integrations.c.id == iid).values(enabled=False))
    assert card(conn, iid).next_sync_at is None


def test_log_is_newest_first_and_bounded(conn: Connection, iid: int) -> None:
    for minute in range(120):
        log(conn, iid, "contact_import", "success", (120 - minute) / 60, records_affected=minute)
    events = read_model.log_events(conn, iid, 500)
    assert len(events) == 100
    assert [e.records_affected for e in events[:3]] == [119, 118, 117]
    assert set(events[0].to_json()) == {
        "id", "occurred_at", "event_type", "records_affected", "records_skipped", "outcome", "message", "run_id",
        "trigger",
    }  # fmt: skip


def _plans(conn: Connection, statements: list[tuple[str, Any]]) -> list[str]:
    plans = []
    for statement, params in statements:
        if "crm_sync_log" not in statement or not statement.lstrip().upper().startswith("SELECT"):
            continue
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            plans.append(statement + "\n" + "\n".join(row[-1] for row in rows))
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
            plans.append(statement + "\n" + "\n".join(row[0] for row in rows))
    return plans


def test_every_card_query_is_an_index_seek(conn: Connection, iid: int) -> None:
    """No query walks a whole integration's log: each uses an index, and none sorts."""
    for hours in range(50):
        log(conn, iid, "sync_finished", ("success", "warning", "error")[hours % 3], hours, run_id=f"r{hours}")
    sync_requests.mark_launched(conn, sync_requests.create(conn, iid, "retry", None, NOW), NOW)
    sync_requests.set_run_id(conn, sync_requests.active_request(conn, iid).id, "r0")  # type: ignore[union-attr]
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE crm_sync_log"))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, params))

    event.listen(conn.engine, "before_cursor_execute", capture)
    try:
        card(conn, iid)
        read_model.log_events(conn, iid)
        read_model.error_event(conn, iid, 1)
    finally:
        event.remove(conn.engine, "before_cursor_execute", capture)
    plans = _plans(conn, statements)
    assert len(plans) >= 8
    for plan in plans:
        lowered = plan.lower()
        assert "index" in lowered or "primary key" in lowered, plan
        assert "seq scan" not in lowered and "scan crm_sync_log\n" not in lowered + "\n", plan
        assert "temp b-tree" not in lowered and "sort" not in lowered.split("\n", 1)[1], plan


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
        assert counts[0] == counts[1] <= 4, counts
        conn.execute(text("ANALYZE crm_sync_log"))
        for plan in _plans(conn, statements):
            lowered = plan.lower()
            assert "seq scan" not in lowered and "sort" not in lowered.split("\n", 1)[1], plan
