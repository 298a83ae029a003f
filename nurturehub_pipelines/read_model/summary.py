"""An organisation's cards from `crm_sync_summary` (0007, `store/sync_summary`): two statements on the log's
side whatever the size of the organisation or of the log, on both engines.

The summary holds the rows `card`'s seeks would return (by the same tags, the run row without its window)
and the streak `failures_since` would count, kept by the database's triggers; the cards are assembled from
them by `card.assemble`, as one card is from its seeks. What depends on the time of the read is decided
here: the activity window of the kept run row (and, in `assemble`, staleness).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, select

from nurturehub_pipelines.read_model.activity import RUN_ACTIVITY_WINDOW, writing
from nurturehub_pipelines.read_model.card import Card, assemble
from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.read_model.kinds import Kinds, last_completed
from nurturehub_pipelines.read_model.refs import IntegrationRef
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.tables import crm_sync_summary, crm_sync_summary_rows, integrations

WRITING = "writing"  # the newest row a run wrote (`activity.newest_run_row`, its window left to the reader)

_ROW_COLUMNS = (
    crm_sync_summary_rows.c.log_id,
    crm_sync_summary_rows.c.occurred_at,
    crm_sync_summary_rows.c.event_type,
    crm_sync_summary_rows.c.records_affected,
    crm_sync_summary_rows.c.records_skipped,
    crm_sync_summary_rows.c.outcome,
    crm_sync_summary_rows.c.message,
    crm_sync_summary_rows.c.run_id,
    crm_sync_summary_rows.c.trigger,
)  # in LogEvent's field order


def summarised_cards(
    conn: Connection, org_id: int, refs: list[IntegrationRef], now: datetime, next_tick: datetime
) -> list[Card]:
    """The cards `card` builds seek by seek, from the summary: one statement for the log, one for requests."""
    query = (
        select(crm_sync_summary.c.integration_id, crm_sync_summary.c.consecutive_failures,
               crm_sync_summary_rows.c.tag, *_ROW_COLUMNS)
        .select_from(
            crm_sync_summary.join(integrations, integrations.c.id == crm_sync_summary.c.integration_id).outerjoin(
                crm_sync_summary_rows, crm_sync_summary_rows.c.integration_id == crm_sync_summary.c.integration_id
            )
        )
        .where(integrations.c.org_id == org_id)
    )  # fmt: skip
    kinds: dict[int, Kinds] = defaultdict(lambda: defaultdict(list))
    streaks: dict[int, int] = {}
    for row in conn.execute(query):
        streaks[row.integration_id] = row.consecutive_failures
        if row.tag is not None:
            kinds[row.integration_id][row.tag].append(LogEvent(*tuple(row)[3:]))
    requested = sync_requests.in_progress(conn, [ref.id for ref in refs], now)
    cards = []
    for ref in refs:
        own = kinds[ref.id]
        run_rows = [event for event in own.get(WRITING, []) if event.occurred_at >= now - RUN_ACTIVITY_WINDOW]
        cards.append(
            assemble(
                ref,
                own,
                last_completed(own),
                consecutive_failures=streaks.get(ref.id, 0),
                in_progress=ref.id in requested or writing(run_rows),
                now=now,
                next_tick=next_tick,
            )
        )
    return cards
