"""Writes to `crm_sync_log`, the contract table every reader of sync health relies on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert

from nurturehub_pipelines.store.tables import crm_sync_log, utcnow

EVENT_TYPES = ("auth_refresh", "contact_import", "lead_update", "sync_finished", "sync_requested")
OUTCOMES = ("success", "warning", "error")
TRIGGERS = ("schedule", "sync_now", "retry", "manual")


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
