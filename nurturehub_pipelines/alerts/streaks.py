"""Failure streaks read from `crm_sync_log`, on the log's own rules (`store.sync_log`).

A streak is the failed syncs after the newest completed one, in log order, and it is named by its first
row's id: that id is what makes its alert unique in the outbox.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, select

from nurturehub_pipelines.store.sync_log import completed_sync, failed_sync, later, newest_first
from nurturehub_pipelines.store.tables import crm_sync_log, integrations


@dataclass(frozen=True)
class Streak:
    """Consecutive failed syncs of one integration; `ended` when a completed sync followed them."""

    integration_id: int
    first_log_id: int
    count: int
    last_message: str
    last_at: datetime
    ended: bool


def _newest_finished_outcome(integration_id: Any, before: Any = None) -> Any:
    """The outcome of the integration's newest `sync_finished` row (before `before`): a short backward seek."""
    prior = crm_sync_log.alias("prior")
    query = select(prior.c.outcome).where(
        prior.c.integration_id == integration_id, prior.c.event_type == "sync_finished"
    )
    if before is not None:
        query = query.where(later(before, prior))
    return query.order_by(*newest_first(prior)).limit(1).scalar_subquery()


def _failing(conn: Connection, integration_ids: Sequence[int]) -> list[int]:
    """The integrations whose newest sync failed: a cheap seek each, as most syncs succeed."""
    query = select(integrations.c.id).where(
        integrations.c.id.in_(integration_ids), _newest_finished_outcome(integrations.c.id) == "error"
    )
    return list(conn.execute(query).scalars())


def _enders(conn: Connection, integration_ids: Sequence[int], fresh_after: int | None) -> list[int]:
    """Completed rows above `fresh_after` that directly follow a failure: each ended a streak."""
    if fresh_after is None:
        return []
    ender = crm_sync_log.alias("ender")
    query = select(ender.c.id).where(
        ender.c.integration_id.in_(integration_ids),
        ender.c.id > fresh_after,
        completed_sync(ender),
        _newest_finished_outcome(ender.c.integration_id, before=ender) == "error",
    )
    return list(conn.execute(query).scalars())


def streaks(conn: Connection, integration_ids: Sequence[int], fresh_after: int | None = None) -> list[Streak]:
    """Current streaks of these integrations, and the streaks ended by a completed row above `fresh_after`.

    A batch of integrations costs four queries: the failing integrations and the fresh enders (seeks), then
    the failed rows of those. A failed row belongs to the current streak when no completed row follows it,
    and to a fresh ender's streak when no completed row lies between them. The ended ones let a streak that
    reached the threshold and ended between two evaluations still raise its alert.
    """
    failed, after, ender, between = (crm_sync_log.alias(name) for name in ("failed", "after", "ender", "mid"))
    failing = _failing(conn, integration_ids)
    enders = _enders(conn, integration_ids, fresh_after)
    columns = (failed.c.integration_id, failed.c.id, failed.c.occurred_at, failed.c.message)
    groups: dict[tuple[int, int | None], list[Any]] = defaultdict(list)
    if failing:
        current = select(*columns).where(
            failed.c.integration_id.in_(failing),
            failed_sync(failed),
            ~exists().where(
                after.c.integration_id == failed.c.integration_id, completed_sync(after), later(after, failed)
            ),
        )
        for row in conn.execute(current):
            groups[(row.integration_id, None)].append(row)
    if enders:
        ended = (
            select(ender.c.id.label("ender_id"), *columns)
            .select_from(failed.join(ender, ender.c.integration_id == failed.c.integration_id))
            .where(
                ender.c.id.in_(enders),
                failed_sync(failed),
                later(ender, failed),
                ~exists().where(
                    between.c.integration_id == failed.c.integration_id,
                    completed_sync(between),
                    later(between, failed),
                    later(ender, between),
                ),
            )
        )
        for ended_row in conn.execute(ended):
            groups[(ended_row.integration_id, ended_row.ender_id)].append(ended_row)
    return [_streak(integration_id, ender_id, rows) for (integration_id, ender_id), rows in groups.items()]


def _streak(integration_id: int, ender_id: int | None, rows: list[Any]) -> Streak:
    rows.sort(key=lambda row: (row.occurred_at, row.id))
    return Streak(
        integration_id=integration_id,
        first_log_id=rows[0].id,
        count=len(rows),
        last_message=rows[-1].message,
        last_at=rows[-1].occurred_at,
        ended=ender_id is not None,
    )
