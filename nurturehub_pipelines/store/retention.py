"""Retention (DESIGN.md "Retention"): old sync history goes, in short batches, and never what a card reads.

`crm_sync_log` rows older than the window are deleted, integration by integration, except:
- its newest 100 events: the `/log` answer (`read_model.LOG_LIMIT`);
- every row from its newest completed `sync_finished` onward: `last_synced_at`, the badge, the streak;
- the older rows a card still reads, so that pruning never changes a card: its 5 newest error rows
  (`recent_errors`, the read model's own seeks), and, while it has never completed a sync, its failed
  syncs (`consecutive_failures` counts all of them; the streak's alert is named by the first);
- a streak that a completed sync ended less than STREAK_GRACE ago: the alert sensor reads it whole to
  send its recovery (with its first row gone it would see a new streak and alert again).
Skipped records, sent alerts and finished (or expired) sync requests older than the window go too, and
expired browser sessions. A sent failure alert stays while its streak has no recovery alert, and a
recovery alert while its failure alert is there: either alone would make the alert sensor send again.

Fast at scale: an integration's deletable rows are a prefix of its log in `(occurred_at, id)` order, so
they go as consecutive ranges of the `(integration_id, occurred_at, id)` index, at most `batch` rows a
transaction, each range starting where the last one ended (no rescan of dead index entries). The other
tables go by their age indexes (0005), `batch` rows a transaction. Readers never wait on a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, delete, exists, func, or_, select, tuple_

from nurturehub_pipelines.read_model.events import LOG_LIMIT, LogEvent, newest
from nurturehub_pipelines.read_model.kinds import KIND_SEEKS, Seek, last_completed, recent_errors
from nurturehub_pipelines.store import sessions
from nurturehub_pipelines.store.sync_log import COMPLETED, completed_sync, failed_sync, later, newest_first
from nurturehub_pipelines.store.tables import (
    alert_outbox,
    crm_sync_log,
    skipped_records,
    sync_requests,
    utcnow,
    web_sessions,
)

BATCH = 5000  # rows a transaction: a few tens of milliseconds of locks at most
# After each step, rest this many times as long as it took: the page and the syncs get the database (and
# on a small machine the CPU) at least half the time. A nightly job has hours; nobody waits for it.
REST = 1.0
# A streak ended this recently keeps its rows: the alert sensor may not have read its end yet (it reads
# within a minute while the daemon runs; a day covers a daemon outage).
STREAK_GRACE = timedelta(days=1)
TABLES = ("crm_sync_log", "skipped_records", "alert_outbox", "sync_requests", "web_sessions")

Key = tuple[datetime, int]  # a log row's place in log order: (occurred_at, id)


@dataclass
class Pruned:
    """What one prune deleted, per table, and how its batches went (the bench and the job report them)."""

    rest: float = REST
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0
    largest_batch_seconds: float = 0.0
    busy_seconds: float = 0.0  # time in the database's steps, rests left out
    integrations: int = 0

    @contextmanager
    def step(self, deleting: bool = True) -> Iterator[None]:
        """One short transaction (a delete batch, or an integration's plan), then a rest."""
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.busy_seconds += elapsed
        if deleting:
            self.batches += 1
            self.largest_batch_seconds = max(self.largest_batch_seconds, elapsed)
        if self.rest > 0:
            time.sleep(elapsed * self.rest)


@dataclass(frozen=True)
class Plan:
    """One integration's deletable rows: before `bound` in log order (and older than the window), but
    never the ids in `spared`, nor its failed syncs when `spare_failures`."""

    integration_id: int
    bound: Key
    spared: tuple[int, ...]
    spare_failures: bool

    def exceptions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [crm_sync_log.c.id.not_in(self.spared)] if self.spared else []
        if self.spare_failures:
            where.append(~failed_sync())
        return where


def cutoff(days: int, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)


def _before(key: Key) -> ColumnElement[bool]:
    """The row comes before `key` in log order (`sync_log.later`, the other way round)."""
    return tuple_(crm_sync_log.c.occurred_at, crm_sync_log.c.id) < key


def _ascending() -> tuple[Any, Any]:
    return (crm_sync_log.c.occurred_at, crm_sync_log.c.id)


def _streak_start(conn: Connection, integration_id: int, completed: LogEvent) -> LogEvent | None:
    """The completed sync before the failed ones that `completed` ended (None if none came before them);
    `completed` itself when the sync before it did not fail."""
    earlier = (_before(completed.order),)
    failed = Seek("failed", 1, (failed_sync(), *earlier)).rows(conn, integration_id)
    if not failed:
        return completed
    prior = newest(
        [
            event
            for outcome in COMPLETED
            for event in Seek(outcome, 1, (completed_sync(), crm_sync_log.c.outcome == outcome, *earlier)).rows(
                conn, integration_id
            )
        ]
    )
    return completed if prior is not None and prior.order > failed[0].order else prior


def plan(conn: Connection, integration_id: int, now: datetime) -> Plan | None:
    """What may go of one integration's log: None when it has no more than its newest 100 rows.

    A handful of index seeks: the 100th newest row, and the card's own seeks (`read_model.kinds`).
    """
    hundredth = conn.execute(
        select(crm_sync_log.c.occurred_at, crm_sync_log.c.id)
        .where(crm_sync_log.c.integration_id == integration_id)
        .order_by(*newest_first())
        .offset(LOG_LIMIT - 1)
        .limit(1)
    ).first()
    if hundredth is None:
        return None
    kinds = {seek.tag: seek.rows(conn, integration_id) for seek in KIND_SEEKS}
    completed = last_completed(kinds)
    if completed is not None and completed.occurred_at > now - STREAK_GRACE:
        completed = _streak_start(conn, integration_id, completed)
    bound: Key = (hundredth.occurred_at, hundredth.id)
    if completed is not None and completed.order < bound:
        bound = completed.order
    spared = tuple(event.id for event in recent_errors(kinds) if event.order < bound)
    return Plan(integration_id, bound, spared, spare_failures=completed is None)


def _log_integrations(conn: Connection) -> Iterator[int]:
    """Every integration id in the log (removed ones' leftovers too): one index seek each."""
    last = None
    while True:
        query = select(func.min(crm_sync_log.c.integration_id))
        if last is not None:
            query = query.where(crm_sync_log.c.integration_id > last)
        last = conn.execute(query).scalar()
        if last is None:
            return
        yield last


def _prune_integration(conn: Connection, rule: Plan, before: datetime, batch: int, pruned: Pruned) -> None:
    """Delete the plan's rows range by range, oldest first, `batch` rows a transaction at most."""
    start: Key | None = None
    while True:
        window = [
            crm_sync_log.c.integration_id == rule.integration_id,
            _before(rule.bound),
            crm_sync_log.c.occurred_at < before,
        ]
        if start is not None:
            window.append(later(crm_sync_log, _KeyRow(*start)))
        with pruned.step(), conn.begin():
            end = conn.execute(
                select(*_ascending()).where(*window).order_by(*_ascending()).offset(batch - 1).limit(1)
            ).first()
            through = [tuple_(*_ascending()) <= (end.occurred_at, end.id)] if end is not None else []
            deleted = conn.execute(delete(crm_sync_log).where(*window, *through, *rule.exceptions())).rowcount
        pruned.deleted["crm_sync_log"] += deleted
        if end is None:
            return
        start = (end.occurred_at, end.id)


@dataclass(frozen=True)
class _KeyRow:
    """A log key in the shape `sync_log.later` reads (a fetched row's `occurred_at` and `id`)."""

    occurred_at: datetime
    id: int


def _prune_by_age(
    conn: Connection, table: Table, age: Any, where: list[ColumnElement[bool]], batch: int, pruned: Pruned
) -> None:
    """Delete the rows matching `where` (which bounds `age`), oldest first, `batch` rows a transaction."""
    since = None
    while True:
        range_ = [*where, age >= since] if since is not None else where
        ids = select(table.c.id).where(*range_).order_by(age).limit(batch).scalar_subquery()
        with pruned.step(), conn.begin():
            ages = conn.execute(delete(table).where(table.c.id.in_(ids)).returning(age)).scalars().all()
        pruned.deleted[table.name] += len(ages)
        if len(ages) < batch:
            return
        since = max(ages)


def _alert_counterpart(kind: str, other: str) -> ColumnElement[bool]:
    """An outbox row of the same streak with the other kind (`failure:` ↔ `recovered:` dedupe keys)."""
    twin = alert_outbox.alias("twin")
    return exists().where(
        twin.c.dedupe_key == func.replace(alert_outbox.c.dedupe_key, f"{kind}:", f"{other}:"),
    )


def prune(
    engine: Engine,
    days: int,
    now: datetime | None = None,
    batch: int = BATCH,
    rest: float = REST,
    on_integration: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Apply the retention rule now, with a window of `days` (a positive integer); returns the counts."""
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ValueError(f"the retention window must be a positive whole number of days, not {days!r}")
    now = now or utcnow()
    before = cutoff(days, now)
    pruned = Pruned(rest=rest)
    with engine.connect() as conn:  # one connection, a short transaction per step
        with conn.begin():
            integration_ids = list(_log_integrations(conn))
        for integration_id in integration_ids:
            with pruned.step(deleting=False), conn.begin():
                rule = plan(conn, integration_id, now)
            pruned.integrations += 1
            if rule is not None:
                _prune_integration(conn, rule, before, batch, pruned)
            if on_integration is not None:
                on_integration(pruned)
        _prune_by_age(
            conn,
            skipped_records,
            skipped_records.c.occurred_at,
            [skipped_records.c.occurred_at < before],
            batch,
            pruned,
        )
        sent = alert_outbox.c.sent_at
        # Failure alerts whose recovery is written first; then recoveries whose failure alert is gone.
        kind = alert_outbox.c.kind
        for where in (
            and_(kind == "failure", _alert_counterpart("failure", "recovered")),
            and_(kind != "failure", or_(kind != "recovered", ~_alert_counterpart("recovered", "failure"))),
        ):
            _prune_by_age(conn, alert_outbox, sent, [sent < before, where], batch, pruned)
        finished = sync_requests.c.finished_at
        closed = and_(finished < before, sync_requests.c.status.in_(("finished", "expired")))
        _prune_by_age(conn, sync_requests, finished, [closed], batch, pruned)
        with pruned.step(), conn.begin():
            pruned.deleted[web_sessions.name] += sessions.prune_expired(conn, now)
    return pruned
