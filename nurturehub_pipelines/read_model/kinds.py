"""The rows a card is built from, by kind: each kind is one index seek with a small LIMIT.

`ix_crm_sync_log_integration_kind_newest (integration_id, event_type, outcome, occurred_at, id)` answers
"the newest rows of event type E with outcome X" as a pure seek; a completed sync is sought once per
completed outcome, because an IN list on `outcome` would not keep the index's order (a sort, growing with
the log). The same seeks serve one card (`Seek.rows`) and a whole organisation (`cards_batched`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal, select

from nurturehub_pipelines.read_model.events import LOG_COLUMNS, LogEvent, newest
from nurturehub_pipelines.store.sync_log import COMPLETED, completed_sync, failed_sync, newest_first
from nurturehub_pipelines.store.tables import crm_sync_log

RECENT_ERRORS = 5
FAILED, REFUSED = "failed", "refused"  # the tags of failed syncs and of refused requests

# The newest rows of each kind, by the kind's tag (a tag with no rows may be absent).
Kinds = dict[str, list[LogEvent]]


@dataclass(frozen=True)
class Seek:
    """The newest `limit` rows of one integration that match `where`, newest first."""

    tag: str
    limit: int
    where: tuple[ColumnElement[bool], ...]

    def query(self, integration_id: Any) -> Select[Any]:
        """`integration_id` is a value, or the column of an enclosing LATERAL row; rows are (tag, *LOG_COLUMNS)."""
        return (
            select(literal(self.tag).label("tag"), *LOG_COLUMNS)
            .where(crm_sync_log.c.integration_id == integration_id, *self.where)
            .order_by(*newest_first())
            .limit(self.limit)
        )

    def rows(self, conn: Connection, integration_id: int) -> list[LogEvent]:
        return [LogEvent(*row[1:]) for row in conn.execute(self.query(integration_id))]


KIND_SEEKS = (
    *(Seek(outcome, 1, (completed_sync(), crm_sync_log.c.outcome == outcome)) for outcome in COMPLETED),
    Seek(FAILED, RECENT_ERRORS, (failed_sync(),)),
    Seek(REFUSED, RECENT_ERRORS, (crm_sync_log.c.event_type == "sync_requested", crm_sync_log.c.outcome == "error")),
)


def last_completed(kinds: Kinds) -> LogEvent | None:
    """The newest completed sync: `last_synced_at`, where staleness and the failure streak count from."""
    return newest([event for outcome in COMPLETED for event in kinds.get(outcome, [])])


def latest_finished(kinds: Kinds) -> LogEvent | None:
    """The newest finished sync, completed or failed: what the badge follows."""
    return newest([event for tag in (*COMPLETED, FAILED) for event in kinds.get(tag, [])])


def recent_errors(kinds: Kinds) -> tuple[LogEvent, ...]:
    """The newest failed syncs and refused requests, together, newest first."""
    errors = kinds.get(FAILED, []) + kinds.get(REFUSED, [])
    return tuple(sorted(errors, key=lambda event: event.order, reverse=True)[:RECENT_ERRORS])
