"""`consecutive_failures`: the failed syncs since the last completed one (the rules of `store/sync_log`).

Counted as an index-only range scan of the kind index over the streak itself, so a long streak costs its
length and a short one almost nothing, whatever the size of the log.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, literal, select, union_all

from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.read_model.kinds import RECENT_ERRORS
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


def fetched_streak(failed: list[LogEvent], completed: LogEvent | None) -> int | None:
    """The streak, if the fetched newest failed syncs settle it; None when all of them are in it (count it)."""
    after = [event for event in failed if completed is None or event.order > completed.order]
    return None if len(after) == RECENT_ERRORS else len(after)


def count_streaks(conn: Connection, completed: dict[int, LogEvent | None]) -> dict[int, int]:
    """`failures_since` for each integration of `completed`, in one statement (a UNION ALL branch each)."""
    branches = [
        select(literal(integration_id).label("integration_id"), func.count().label("n"))
        .select_from(crm_sync_log)
        .where(*_in_streak(integration_id, since))
        for integration_id, since in completed.items()
    ]
    return {row.integration_id: row.n for row in conn.execute(union_all(*branches))}
