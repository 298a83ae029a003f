"""The log rules every reader counts by (store/sync_log.py), on crafted rows whose ids and times disagree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, and_, func, select

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.sync_log import completed_sync, failed_sync, later, newest_first, write_event
from nurturehub_pipelines.store.tables import crm_sync_log

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INTEGRATION = 7


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with db.engine(db_url).begin() as connection:
        yield connection


def row(conn: Connection, event_type: str, outcome: str, minutes: float, integration_id: int = INTEGRATION) -> int:
    return write_event(
        conn,
        integration_id=integration_id,
        event_type=event_type,
        outcome=outcome,
        message=f"{event_type} {outcome}",
        trigger="schedule",
        run_id=f"run-{event_type}-{minutes}",
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def ids_where(conn: Connection, *where: object) -> set[int]:
    return set(conn.execute(select(crm_sync_log.c.id).where(*where)).scalars())  # type: ignore[arg-type]


def test_a_completed_sync_is_a_finished_success_or_warning(conn: Connection) -> None:
    success = row(conn, "sync_finished", "success", 0)
    warning = row(conn, "sync_finished", "warning", 1)
    row(conn, "sync_finished", "error", 2)
    row(conn, "contact_import", "success", 3)  # a step, not a sync
    row(conn, "sync_requested", "success", 4)
    assert ids_where(conn, completed_sync()) == {success, warning}


def test_a_failed_sync_is_a_finished_error_only(conn: Connection) -> None:
    row(conn, "sync_finished", "success", 0)
    row(conn, "sync_finished", "warning", 1)
    failed = row(conn, "sync_finished", "error", 2)
    row(conn, "auth_refresh", "error", 3)  # the step that failed: the sync counts once, by its sync_finished
    row(conn, "sync_requested", "error", 4)  # a refused Sync Now is no failed sync
    assert ids_where(conn, failed_sync()) == {failed}


def test_log_order_is_time_first_then_id(conn: Connection) -> None:
    # Written out of time order (a late writer), and two rows in the same instant.
    b = row(conn, "sync_finished", "success", 10)
    a = row(conn, "sync_finished", "error", 5)
    c = row(conn, "contact_import", "success", 10)
    d = row(conn, "lead_update", "success", 20)
    ordered = list(conn.execute(select(crm_sync_log.c.id).order_by(*newest_first())).scalars())
    assert ordered == [d, c, b, a]


def test_later_compares_time_then_id_against_a_row_or_an_alias(conn: Connection) -> None:
    b = row(conn, "sync_finished", "success", 10)
    a = row(conn, "sync_finished", "error", 5)  # a higher id, but earlier
    c = row(conn, "sync_finished", "error", 10)  # the same instant as b, written after it
    d = row(conn, "sync_finished", "error", 20)
    than_b = conn.execute(select(crm_sync_log.c.occurred_at, crm_sync_log.c.id).where(crm_sync_log.c.id == b)).one()
    assert ids_where(conn, later(crm_sync_log, than_b)) == {c, d}
    assert a not in ids_where(conn, later(crm_sync_log, than_b)) and a > b

    other = crm_sync_log.alias("other")  # the same rule correlated against another alias
    after_b = select(func.count()).select_from(other).where(and_(other.c.id == b, later(crm_sync_log, other)))
    assert ids_where(conn, after_b.scalar_subquery() > 0) == {c, d}


def test_the_rules_build_a_failure_streak_from_aliases(conn: Connection) -> None:
    """The query shape the page and the alerts use: failed syncs after the newest completed one."""
    row(conn, "sync_finished", "error", 0)
    row(conn, "sync_finished", "warning", 5)  # ends the streak before it
    streak = {row(conn, "sync_finished", "error", m) for m in (6, 7, 7)}
    row(conn, "sync_finished", "error", 8, integration_id=INTEGRATION + 1)  # another integration's
    log, done = crm_sync_log.alias("log"), crm_sync_log.alias("done")
    newest_done = (
        select(done.c.occurred_at, done.c.id)
        .where(done.c.integration_id == INTEGRATION, completed_sync(done))
        .order_by(*newest_first(done))
        .limit(1)
    )
    last = conn.execute(newest_done).one()
    found = conn.execute(
        select(log.c.id).where(log.c.integration_id == INTEGRATION, failed_sync(log), later(log, last))
    ).scalars()
    assert set(found) == streak
