"""`crm_sync_log`, the contract table every reader of sync health relies on: its writes, and its rules.

The rules here are the one home of what the page, the alerts and the pause rule all count:
- a *completed* sync is a `sync_finished` row with outcome `success` or `warning`;
- a *failed* sync is a `sync_finished` row with outcome `error`;
- rows are ordered by `(occurred_at, id)`: time first, then id for rows written in the same instant;
- a *failure streak* is the failed syncs after the newest completed one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, insert, tuple_

from nurturehub_pipelines.store.tables import crm_sync_log, utcnow

EVENT_TYPES = ("auth_refresh", "contact_import", "lead_update", "sync_finished", "sync_requested")
OUTCOMES = ("success", "warning", "error")
TRIGGERS = ("schedule", "sync_now", "retry", "manual")
COMPLETED = ("success", "warning")


def completed_sync(log: Any = crm_sync_log) -> ColumnElement[bool]:
    """A sync that completed (with or without warnings): it ends a failure streak."""
    return and_(log.c.event_type == "sync_finished", log.c.outcome.in_(COMPLETED))


def failed_sync(log: Any = crm_sync_log) -> ColumnElement[bool]:
    """A sync that failed: one more in its integration's streak."""
    return and_(log.c.event_type == "sync_finished", log.c.outcome == "error")


def later(row: Any, than: Any) -> ColumnElement[bool]:
    """`row` comes after `than` in log order (`than` may be another alias, or a fetched row's values)."""
    theirs = than.c if hasattr(than, "c") else than
    return tuple_(row.c.occurred_at, row.c.id) > tuple_(theirs.occurred_at, theirs.id)


def newest_first(log: Any = crm_sync_log) -> tuple[Any, Any]:
    """Log order, newest first: served backwards by the `(integration_id, …, occurred_at, id)` indexes."""
    return (log.c.occurred_at.desc(), log.c.id.desc())


def write_event(
    conn: Connection,
    *,
    integration_id: int,
    event_type: str,
    outcome: str,
    message: str,
    trigger: str,
    run_id: str | None = None,
    records_affected: int = 0,
    records_skipped: int = 0,
    occurred_at: datetime | None = None,
) -> int:
    assert event_type in EVENT_TYPES and outcome in OUTCOMES, (event_type, outcome)
    return conn.execute(
        insert(crm_sync_log)
        .values(
            integration_id=integration_id,
            run_id=run_id,
            trigger=trigger,
            event_type=event_type,
            outcome=outcome,
            records_affected=records_affected,
            records_skipped=records_skipped,
            message=message,
            occurred_at=occurred_at or utcnow(),
        )
        .returning(crm_sync_log.c.id)
    ).scalar_one()
