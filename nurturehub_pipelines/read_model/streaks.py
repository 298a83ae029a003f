"""`consecutive_failures`: the failed syncs since the last completed one (the rules of `store/sync_log`).

Counted as an index-only range scan of the kind index over the streak itself, so a long streak costs its
length and a short one almost nothing, whatever the size of the log.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, select

from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.store.sync_log import failed_sync, later
from nurturehub_pipelines.store.tables import crm_sync_log


def _in_streak(integration_id: int, completed: LogEvent | None) -> list[ColumnElement[bool]]:
    """The integration's failed syncs after `completed` (all of them when nothing has completed)."""
    where = [crm_sync_log.c.integration_id == integration_id, failed_sync()]
    if completed is not None:
        where.append(later(crm_sync_log, completed))
    return where


def failures_since(conn: Connection, integration_id: int, completed: LogEvent | None) -> int:
    return conn.execute(
        select(func.count()).select_from(crm_sync_log).where(*_in_streak(integration_id, completed))
    ).scalar_one()
