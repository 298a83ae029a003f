"""One card from the log's index seeks; an organisation's cards from the triggers' summary.

`card` (one integration: the API's PATCH answer, and the reference the summary is tested against) sends
a card's seeks, each an index seek with a small LIMIT or a range scan bounded by what it counts, so it
costs the same whatever the size of the log. `cards` reads `crm_sync_summary` (`summary`), which holds the
results of those same seeks for every integration: 2 statements a page on both engines (the integrations with
their summaries, their sync requests), whatever the size of the organisation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from nurturehub_pipelines.read_model.activity import sync_in_progress
from nurturehub_pipelines.read_model.card import Card, assemble
from nurturehub_pipelines.read_model.kinds import KIND_SEEKS, last_completed
from nurturehub_pipelines.read_model.next_sync import next_sync_at
from nurturehub_pipelines.read_model.refs import IntegrationRef
from nurturehub_pipelines.read_model.streaks import failures_since
from nurturehub_pipelines.read_model.summary import summarised_cards
from nurturehub_pipelines.store.tables import utcnow


def card(conn: Connection, ref: IntegrationRef, now: datetime, next_tick: datetime | None = None) -> Card:
    """One integration's card, one seek at a time."""
    kinds = {seek.tag: seek.rows(conn, ref.id) for seek in KIND_SEEKS}
    completed = last_completed(kinds)
    return assemble(
        ref,
        kinds,
        completed,
        consecutive_failures=failures_since(conn, ref.id, completed),
        in_progress=sync_in_progress(conn, ref.id, now),
        now=now,
        next_tick=next_tick or next_sync_at(now),
    )


def cards(conn: Connection, org_id: int, now: datetime | None = None) -> list[Card]:
    """The organisation's cards, in integration order."""
    now = now or utcnow()
    next_tick = next_sync_at(now)
    return summarised_cards(conn, org_id, now, next_tick)
