"""PostgreSQL: every card of an organisation in a fixed few statements (bench/README.md, section 3).

`card`'s seeks run for each integration of the organisation in one statement (CROSS JOIN LATERAL); the
failure streak is counted from the fetched failed syncs unless all RECENT_ERRORS of them are newer than
the last completed sync, and only then counted as `failures_since` counts it, in one more statement; the
requests are read in one more. So: the refs, the seeks, perhaps the streaks, the requests.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select, true, union_all

from nurturehub_pipelines.read_model.activity import newest_run_row, writing
from nurturehub_pipelines.read_model.card import Card, assemble
from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.read_model.kinds import FAILED, KIND_SEEKS, Kinds, Seek, last_completed
from nurturehub_pipelines.read_model.refs import IntegrationRef
from nurturehub_pipelines.read_model.streaks import count_streaks, fetched_streak
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.tables import integrations


def _newest_of_each_kind(org_id: int, seeks: tuple[Seek, ...]) -> Select[Any]:
    """The seeks for each integration of the organisation, each correlated to its LATERAL row."""
    newest = union_all(*(seek.query(integrations.c.id).correlate(integrations) for seek in seeks)).lateral("newest")
    return (
        select(integrations.c.id.label("integration_id"), newest)
        .select_from(integrations.join(newest, true()))
        .where(integrations.c.org_id == org_id)
    )


def cards_in_one_pass(
    conn: Connection, org_id: int, refs: list[IntegrationRef], now: datetime, next_tick: datetime
) -> list[Card]:
    """The cards `card` builds, with its per-integration queries batched."""
    run_row = newest_run_row(now)
    kinds: dict[int, Kinds] = defaultdict(lambda: defaultdict(list))
    for row in conn.execute(_newest_of_each_kind(org_id, (*KIND_SEEKS, run_row))):
        kinds[row.integration_id][row.tag].append(LogEvent(*row[2:]))
    completed = {ref.id: last_completed(kinds[ref.id]) for ref in refs}
    streaks = {ref.id: fetched_streak(kinds[ref.id][FAILED], completed[ref.id]) for ref in refs}
    uncounted = {ref.id: completed[ref.id] for ref in refs if streaks[ref.id] is None}
    if uncounted:
        streaks.update(count_streaks(conn, uncounted))
    requested = sync_requests.in_progress(conn, [ref.id for ref in refs], now)
    return [
        assemble(
            ref,
            kinds[ref.id],
            completed[ref.id],
            consecutive_failures=streaks[ref.id] or 0,
            in_progress=ref.id in requested or writing(kinds[ref.id][run_row.tag]),
            now=now,
            next_tick=next_tick,
        )
        for ref in refs
    ]
