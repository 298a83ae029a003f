"""An organisation's cards from `crm_sync_summary` (0007, `store/sync_summary`): one statement for the log's
part of every card, whatever the size of the organisation or of the log, on both engines.

The triggers keep, per integration, the rows `card`'s seeks would return and the streak `failures_since`
would count, and derive from them `card`: the newest completed sync, the newest finished sync, the newest
errors and the newest run row, as one JSON value. What depends on the time of the read is decided here and
in `card.assemble`: whether the run row is within the activity window, and staleness.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, select

from nurturehub_pipelines.read_model.activity import RUN_ACTIVITY_WINDOW, STEP_EVENTS
from nurturehub_pipelines.read_model.card import Card, build
from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.read_model.refs import REF_COLUMNS, IntegrationRef
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.tables import crm_sync_summary, integrations
from nurturehub_pipelines.store.tables import sync_requests as sync_requests_table


def _utc(text: str) -> datetime:
    """A kept row's time, read as `UTCDateTime` reads SQLite's: UTC text on both engines, most of it in the
    one form SQLAlchemy writes (read with its offset appended: `replace(tzinfo=…)` costs ten times more)."""
    if len(text) == 26 and text[10] == " ":
        return datetime.fromisoformat(text + "+00:00")
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _event(values: list[Any] | None) -> LogEvent | None:
    if values is None:
        return None
    log_id, occurred_at, *rest = values
    return LogEvent(log_id, _utc(occurred_at), *rest)


def _writing(run_row: LogEvent, now: datetime) -> bool:
    """`activity.writing` of the run row the seek would find: the newest, if within the window."""
    return run_row.event_type in STEP_EVENTS and run_row.occurred_at >= now - RUN_ACTIVITY_WINDOW


Decoded = tuple[LogEvent | None, LogEvent | None, tuple[LogEvent, ...], LogEvent | None]


@lru_cache(maxsize=8192)
def _decoded(summary: str) -> Decoded:
    """The summary's events: (newest completed, newest finished, recent errors newest first, newest run row).

    Cached by the summary's own text, which changes whenever the rows do, so a hit is never stale: a page
    refreshed every few seconds over unchanged integrations decodes nothing (the events are immutable).
    """
    completed_values, latest_values, error_values, run_values = json.loads(summary)
    completed = _event(completed_values)
    latest = completed if latest_values == completed_values else _event(latest_values)
    found = [event for event in map(_event, error_values) if event is not None]
    errors = tuple(sorted(found, key=lambda event: event.order, reverse=True) if len(found) > 1 else found)
    return completed, latest, errors, _event(run_values)


def _card(
    ref: IntegrationRef, streak: int | None, summary: str | None, in_progress: bool, now: datetime, next_tick: datetime
) -> Card:
    """`card.assemble`'s card, from the derived summary instead of fetched rows."""
    completed, latest, errors, run_row = _decoded(summary) if summary is not None else (None, None, (), None)
    writing = run_row is not None and _writing(run_row, now)
    return build(ref, latest, completed, errors, streak or 0, in_progress or writing, now, next_tick)


# Built once: the page sends it on every refresh. One row per integration of the organisation, in id order,
# with its summary and its active Sync Now or scheduled request (at most one: `sync_requests.joins_active`).
_CARDS = (
    select(
        *REF_COLUMNS,
        crm_sync_summary.c.consecutive_failures,
        crm_sync_summary.c.card,
        *sync_requests.REQUEST_COLUMNS,
    )
    .select_from(
        integrations.outerjoin(crm_sync_summary, crm_sync_summary.c.integration_id == integrations.c.id).outerjoin(
            sync_requests_table, sync_requests.joins_active(integrations.c.id)
        )
    )
    .where(integrations.c.org_id == bindparam("org_id"))
    .order_by(integrations.c.id)
)
_REF = len(REF_COLUMNS)


def summarised_cards(conn: Connection, org_id: int, now: datetime, next_tick: datetime) -> list[Card]:
    """The cards `card` builds seek by seek, from one statement: the integrations, their summaries and
    their active requests."""
    cards = []
    for row in conn.execute(_CARDS, {"org_id": org_id}):
        values = tuple(row)
        requested = sync_requests.stands(values[_REF + 2 :], now)
        cards.append(_card(IntegrationRef(*values[:_REF]), values[_REF], values[_REF + 1], requested, now, next_tick))
    return cards
