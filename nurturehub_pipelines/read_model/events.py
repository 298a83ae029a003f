"""The log as the page and the API list it: one event, its columns, and the two reads that return events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, select

from nurturehub_pipelines.store.sync_log import newest_first
from nurturehub_pipelines.store.tables import crm_sync_log

LOG_LIMIT = 100


# The last time written and its text: every card of a page writes the same next_sync_at object. A tuple,
# replaced whole, so a thread never pairs one time with another's text; it holds the time, so its id is not reused.
_LAST_ISO: tuple[datetime | None, str | None] = (None, None)


def iso(value: datetime | None) -> str | None:
    """The JSON form of a time; None stays null rather than failing the whole card."""
    global _LAST_ISO
    if value is None:
        return None
    last = _LAST_ISO
    if last[0] is value:
        return last[1]
    text = value.isoformat()
    _LAST_ISO = (value, text)
    return text


@dataclass(frozen=True)
class LogEvent:
    id: int
    occurred_at: datetime
    event_type: str
    records_affected: int
    records_skipped: int
    outcome: str
    message: str
    run_id: str | None
    trigger: str

    @cached_property
    def occurred_at_iso(self) -> str:
        """Written once per event: the summary's events are cached across pages (`summary._decoded`), and
        `isoformat` of an aware time was a quarter of an organisation of 100's card-writing time."""
        return self.occurred_at.isoformat()

    @property
    def order(self) -> tuple[datetime, int]:
        """Log order (`sync_log.newest_first`) for rows already fetched: time, then id for one instant."""
        return (self.occurred_at, self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at_iso,
            "event_type": self.event_type,
            "records_affected": self.records_affected,
            "records_skipped": self.records_skipped,
            "outcome": self.outcome,
            "message": self.message,
            "run_id": self.run_id,
            "trigger": self.trigger,
        }

    def to_error_json(self) -> dict[str, Any]:
        """A card's `recent_errors` entry: enough to show the error and point a Retry at it."""
        return {
            "log_id": self.id,
            "occurred_at": self.occurred_at_iso,
            "event_type": self.event_type,
            "message": self.message,
        }


# In LogEvent's field order, so a fetched row is `LogEvent(*row)`.
LOG_COLUMNS = (
    crm_sync_log.c.id,
    crm_sync_log.c.occurred_at,
    crm_sync_log.c.event_type,
    crm_sync_log.c.records_affected,
    crm_sync_log.c.records_skipped,
    crm_sync_log.c.outcome,
    crm_sync_log.c.message,
    crm_sync_log.c.run_id,
    crm_sync_log.c.trigger,
)


def newest(events: list[LogEvent]) -> LogEvent | None:
    """The newest of rows fetched by separate seeks, which come back in no common order."""
    return max(events, key=lambda event: event.order, default=None)


def log_events(conn: Connection, integration_id: int, limit: int = LOG_LIMIT) -> list[LogEvent]:
    """The newest `limit` (at most 100) events, newest first: one backward walk of the newest index."""
    rows = conn.execute(
        select(*LOG_COLUMNS)
        .where(crm_sync_log.c.integration_id == integration_id)
        .order_by(*newest_first())
        .limit(max(1, min(limit, LOG_LIMIT)))
    ).all()
    return [LogEvent(*row) for row in rows]


def error_event(conn: Connection, integration_id: int, log_id: int) -> LogEvent | None:
    """The log row, if it is an error row of this integration (what a Retry may point at)."""
    row = conn.execute(
        select(*LOG_COLUMNS).where(
            crm_sync_log.c.id == log_id,
            crm_sync_log.c.integration_id == integration_id,
            crm_sync_log.c.outcome == "error",
        )
    ).first()
    return LogEvent(*row) if row else None
