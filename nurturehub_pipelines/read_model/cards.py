"""An organisation's cards, or one card: each query an index seek with a small LIMIT, or a range scan
bounded by what it counts, so a card costs the same whatever the size of the log.

SQLite, which has no LATERAL, runs a card's seeks integration by integration (`card`); on PostgreSQL
`cards` sends those same seeks for every integration at once (`cards_batched`): 3-4 statements a page.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from nurturehub_pipelines.read_model.activity import sync_in_progress
from nurturehub_pipelines.read_model.card import Card, assemble
from nurturehub_pipelines.read_model.cards_batched import cards_in_one_pass
from nurturehub_pipelines.read_model.kinds import KIND_SEEKS, last_completed
from nurturehub_pipelines.read_model.next_sync import next_sync_at
from nurturehub_pipelines.read_model.refs import IntegrationRef, integration_refs
from nurturehub_pipelines.read_model.streaks import failures_since
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
    refs = integration_refs(conn, org_id)
    if conn.dialect.name == "postgresql" and refs:
        return cards_in_one_pass(conn, org_id, refs, now, next_tick)
    return [card(conn, ref, now, next_tick) for ref in refs]
