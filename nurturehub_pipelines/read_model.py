"""The integrations page as data: cards and log events, built from `crm_sync_log`.

Every card field comes from the log alone (rows written outside a run included), plus the integration's
one active sync request for `sync_in_progress`. Each query is an index seek with a small LIMIT, or a range
scan bounded by what it counts, so a card costs the same whatever the size of the log:
- `ix_crm_sync_log_integration_kind_newest (integration_id, event_type, outcome, occurred_at, id)` answers
  "newest sync_finished with outcome X" (one seek per outcome: an IN list would not keep the order);
- `ix_crm_sync_log_integration_newest (integration_id, occurred_at, id)` answers the log and
  "is a run writing rows right now";
- `ix_crm_sync_log_finished_run` answers "has this request's run finished".

On PostgreSQL `cards` sends those same seeks for every integration of the organisation in one statement (a
LATERAL join), so the page costs 3-4 statements whatever the number of integrations; SQLite, which has no
LATERAL, runs them integration by integration (`card`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, func, literal, select, true, tuple_, union_all

from crm_resources.core.london import london_time
from crm_resources.registry import crm_name
from nurturehub_pipelines import settings
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, utcnow
from nurturehub_pipelines.store.tables import sync_requests as sync_requests_table

STALE_AFTER = timedelta(hours=8)  # twice the 4-hour schedule (DESIGN.md, Health)
RECENT_ERRORS = 5
LOG_LIMIT = 100
# A run's step rows younger than this, with no sync_finished after them, mean "running". A run that dies
# gets its sync_finished from the failure sensor; the window only bounds the scan if that sensor is down.
RUN_ACTIVITY_WINDOW = timedelta(hours=6)
STEP_EVENTS = ("auth_refresh", "contact_import", "lead_update")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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

    @property
    def order(self) -> tuple[datetime, int]:
        """Newest first means by time, then by id for rows written in the same instant."""
        return (self.occurred_at, self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": iso(self.occurred_at),
            "event_type": self.event_type,
            "records_affected": self.records_affected,
            "records_skipped": self.records_skipped,
            "outcome": self.outcome,
            "message": self.message,
            "run_id": self.run_id,
            "trigger": self.trigger,
        }

    def to_error_json(self) -> dict[str, Any]:
        return {
            "log_id": self.id,
            "occurred_at": iso(self.occurred_at),
            "event_type": self.event_type,
            "message": self.message,
        }


@dataclass(frozen=True)
class Card:
    id: int
    crm: str
    crm_name: str
    name: str
    last_synced_at: datetime | None
    health: str
    health_reason: str | None
    consecutive_failures: int
    sync_in_progress: bool
    next_sync_at: datetime | None
    recent_errors: tuple[LogEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "crm": self.crm,
            "crm_name": self.crm_name,
            "name": self.name,
            "last_synced_at": iso(self.last_synced_at),
            "health": self.health,
            "health_reason": self.health_reason,
            "consecutive_failures": self.consecutive_failures,
            "sync_in_progress": self.sync_in_progress,
            "next_sync_at": iso(self.next_sync_at),
            "recent_errors": [error.to_error_json() for error in self.recent_errors],
        }


@dataclass(frozen=True)
class IntegrationRef:
    """The columns of `integrations` the page needs: never the encrypted credentials."""

    id: int
    org_id: int
    crm: str
    name: str
    enabled: bool
    rate_limited_until: datetime | None

    @property
    def crm_name(self) -> str:
        return crm_name(self.crm)

    @property
    def display_name(self) -> str:
        return self.name or self.crm_name


_REF_COLUMNS = (
    integrations.c.id,
    integrations.c.org_id,
    integrations.c.crm,
    integrations.c.name,
    integrations.c.enabled,
    integrations.c.rate_limited_until,
)
_LOG_COLUMNS = (
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
_NEWEST = (crm_sync_log.c.occurred_at.desc(), crm_sync_log.c.id.desc())


def integration_refs(conn: Connection, org_id: int) -> list[IntegrationRef]:
    rows = conn.execute(select(*_REF_COLUMNS).where(integrations.c.org_id == org_id).order_by(integrations.c.id)).all()
    return [IntegrationRef(*row) for row in rows]


def integration_ref(conn: Connection, integration_id: int) -> IntegrationRef | None:
    row = conn.execute(select(*_REF_COLUMNS).where(integrations.c.id == integration_id)).first()
    return IntegrationRef(*row) if row else None


def log_events(conn: Connection, integration_id: int, limit: int = LOG_LIMIT) -> list[LogEvent]:
    """The newest `limit` (at most 100) events, newest first: one backward walk of the newest index."""
    rows = conn.execute(
        select(*_LOG_COLUMNS)
        .where(crm_sync_log.c.integration_id == integration_id)
        .order_by(*_NEWEST)
        .limit(max(1, min(limit, LOG_LIMIT)))
    ).all()
    return [LogEvent(*row) for row in rows]


def error_event(conn: Connection, integration_id: int, log_id: int) -> LogEvent | None:
    """The log row, if it is an error row of this integration (what a Retry may point at)."""
    row = conn.execute(
        select(*_LOG_COLUMNS).where(
            crm_sync_log.c.id == log_id,
            crm_sync_log.c.integration_id == integration_id,
            crm_sync_log.c.outcome == "error",
        )
    ).first()
    return LogEvent(*row) if row else None


def _newest_of_kind(conn: Connection, integration_id: int, event_type: str, outcome: str, limit: int) -> list[LogEvent]:
    """Equality on the first three columns of the kind index, then a backward walk: a pure seek."""
    rows = conn.execute(
        select(*_LOG_COLUMNS)
        .where(
            crm_sync_log.c.integration_id == integration_id,
            crm_sync_log.c.event_type == event_type,
            crm_sync_log.c.outcome == outcome,
        )
        .order_by(*_NEWEST)
        .limit(limit)
    ).all()
    return [LogEvent(*row) for row in rows]


def _newest(events: list[LogEvent]) -> LogEvent | None:
    return max(events, key=lambda event: event.order, default=None)


def _failures_since(conn: Connection, integration_id: int, completed: LogEvent | None) -> int:
    """Failed syncs after the last completed one: an index-only range scan over the streak itself."""
    query = (
        select(func.count())
        .select_from(crm_sync_log)
        .where(
            crm_sync_log.c.integration_id == integration_id,
            crm_sync_log.c.event_type == "sync_finished",
            crm_sync_log.c.outcome == "error",
        )
    )
    if completed is not None:
        query = query.where(
            tuple_(crm_sync_log.c.occurred_at, crm_sync_log.c.id) > tuple_(completed.occurred_at, completed.id)
        )
    return conn.execute(query).scalar_one()


def run_writing(conn: Connection, integration_id: int, now: datetime) -> bool:
    """Whether a run (of any trigger, scheduled included) has written step rows but no sync_finished yet.

    The newest row written by a run within the activity window decides: a step row means running.
    """
    row = conn.execute(
        select(crm_sync_log.c.event_type)
        .where(
            crm_sync_log.c.integration_id == integration_id,
            crm_sync_log.c.occurred_at >= now - RUN_ACTIVITY_WINDOW,
            crm_sync_log.c.run_id.is_not(None),
            crm_sync_log.c.event_type != "sync_requested",
        )
        .order_by(*_NEWEST)
        .limit(1)
    ).first()
    return row is not None and row.event_type in STEP_EVENTS


def sync_in_progress(conn: Connection, integration_id: int, now: datetime) -> bool:
    """Requested (pending), queued or running (launched, its run not finished), or a run writing rows."""
    request = sync_requests.active_request(conn, integration_id)
    if request is not None and sync_requests.still_active(conn, request, now):
        return True
    return run_writing(conn, integration_id, now)


def next_sync_at(now: datetime) -> datetime:
    """The schedule's next tick after `now` (cron in Europe/London, as the schedule runs it)."""
    from dagster._utils.schedules import cron_string_iterator

    for tick in cron_string_iterator(now.timestamp(), settings.schedule_cron(), settings.SCHEDULE_TIMEZONE):
        if tick.timestamp() > now.timestamp():
            return tick.astimezone(now.tzinfo)
    raise AssertionError("a cron schedule has a next tick")  # pragma: no cover


def _health(latest: LogEvent | None, completed: LogEvent | None, now: datetime) -> tuple[str, str | None]:
    if latest is None:
        return "pending", "Not synced yet"
    if latest.outcome == "error":
        return "red", latest.message or "The last sync failed"
    assert completed is not None  # the latest finished sync completed
    if now - completed.occurred_at >= STALE_AFTER:
        return "red", f"No sync has completed since {london_time(completed.occurred_at, now)}"
    if latest.outcome == "warning":
        skipped = f"{latest.records_skipped} records skipped" if latest.records_skipped else "warnings"
        return "amber", latest.message or f"The last sync completed with {skipped}"
    return "green", None


def card(conn: Connection, ref: IntegrationRef, now: datetime, next_tick: datetime | None = None) -> Card:
    kinds = {
        "ok": _newest_of_kind(conn, ref.id, "sync_finished", "success", 1),
        "warning": _newest_of_kind(conn, ref.id, "sync_finished", "warning", 1),
        "error": _newest_of_kind(conn, ref.id, "sync_finished", "error", RECENT_ERRORS),
        "refused": _newest_of_kind(conn, ref.id, "sync_requested", "error", RECENT_ERRORS),
    }
    completed = _newest(kinds["ok"] + kinds["warning"])
    return _card(
        ref,
        kinds,
        completed,
        consecutive_failures=_failures_since(conn, ref.id, completed),
        in_progress=sync_in_progress(conn, ref.id, now),
        now=now,
        next_tick=next_tick or next_sync_at(now),
    )


def _card(
    ref: IntegrationRef,
    kinds: dict[str, list[LogEvent]],
    completed: LogEvent | None,
    consecutive_failures: int,
    in_progress: bool,
    now: datetime,
    next_tick: datetime,
) -> Card:
    """A card from the newest rows of each kind ("ok", "warning", "error", "refused"), in any order."""
    latest = _newest(kinds["ok"] + kinds["warning"] + kinds["error"])
    health, reason = _health(latest, completed, now)
    errors = sorted(kinds["error"] + kinds["refused"], key=lambda event: event.order, reverse=True)
    return Card(
        id=ref.id,
        crm=ref.crm,
        crm_name=ref.crm_name,
        name=ref.display_name,
        last_synced_at=completed.occurred_at if completed else None,
        health=health,
        health_reason=reason,
        consecutive_failures=consecutive_failures,
        sync_in_progress=in_progress,
        next_sync_at=next_tick if ref.enabled else None,
        recent_errors=tuple(errors[:RECENT_ERRORS]),
    )


def cards(conn: Connection, org_id: int, now: datetime | None = None) -> list[Card]:
    now = now or utcnow()
    next_tick = next_sync_at(now)
    refs = integration_refs(conn, org_id)
    if conn.dialect.name == "postgresql" and refs:
        return _cards_in_one_pass(conn, org_id, refs, now, next_tick)
    return [card(conn, ref, now, next_tick) for ref in refs]


# PostgreSQL: every card of an organisation in a bounded number of statements.


def _seek(tag: str, limit: int, *where: Any) -> Any:
    """One of `card`'s index seeks, for the integration of the enclosing LATERAL row."""
    return (
        select(literal(tag).label("tag"), *_LOG_COLUMNS)
        .where(crm_sync_log.c.integration_id == integrations.c.id, *where)
        .correlate(integrations)
        .order_by(*_NEWEST)
        .limit(limit)
    )


def _of_kind(event_type: str, outcome: str) -> tuple[Any, ...]:
    return (crm_sync_log.c.event_type == event_type, crm_sync_log.c.outcome == outcome)


def _newest_of_each_kind(org_id: int, now: datetime) -> Any:
    """`card`'s five seeks for each integration of the organisation, in one statement (CROSS JOIN LATERAL)."""
    seeks = union_all(
        _seek("ok", 1, *_of_kind("sync_finished", "success")),
        _seek("warning", 1, *_of_kind("sync_finished", "warning")),
        _seek("error", RECENT_ERRORS, *_of_kind("sync_finished", "error")),
        _seek("refused", RECENT_ERRORS, *_of_kind("sync_requested", "error")),
        _seek(  # as in run_writing
            "writing",
            1,
            crm_sync_log.c.occurred_at >= now - RUN_ACTIVITY_WINDOW,
            crm_sync_log.c.run_id.is_not(None),
            crm_sync_log.c.event_type != "sync_requested",
        ),
    ).lateral("newest")
    return (
        select(integrations.c.id.label("integration_id"), seeks)
        .select_from(integrations.join(seeks, true()))
        .where(integrations.c.org_id == org_id)
    )


def _cards_in_one_pass(
    conn: Connection, org_id: int, refs: list[IntegrationRef], now: datetime, next_tick: datetime
) -> list[Card]:
    """The cards `card` builds, with its per-integration queries batched (bench/README.md, section 3).

    The failure streak is counted from the fetched failed syncs unless all RECENT_ERRORS of them are newer
    than the last completed sync; only then is it counted as `_failures_since` does, in one more statement.
    """
    kinds: dict[int, dict[str, list[LogEvent]]] = defaultdict(lambda: defaultdict(list))
    for row in conn.execute(_newest_of_each_kind(org_id, now)):
        kinds[row.integration_id][row.tag].append(LogEvent(*row[2:]))
    completed = {ref.id: _newest(kinds[ref.id]["ok"] + kinds[ref.id]["warning"]) for ref in refs}
    streaks = {ref.id: _fetched_streak(kinds[ref.id]["error"], completed[ref.id]) for ref in refs}
    uncounted = [ref.id for ref in refs if streaks[ref.id] is None]
    if uncounted:
        streaks.update(_count_streaks(conn, uncounted, completed))
    requested = _requested(conn, [ref.id for ref in refs], now)
    return [
        _card(
            ref,
            kinds[ref.id],
            completed[ref.id],
            consecutive_failures=streaks[ref.id] or 0,
            in_progress=ref.id in requested or _writing(kinds[ref.id]["writing"]),
            now=now,
            next_tick=next_tick,
        )
        for ref in refs
    ]


def _writing(newest_run_row: list[LogEvent]) -> bool:
    return bool(newest_run_row) and newest_run_row[0].event_type in STEP_EVENTS


def _fetched_streak(errors: list[LogEvent], completed: LogEvent | None) -> int | None:
    """Failed syncs after the last completed one, if the fetched ones settle it (None: count them)."""
    after = [error for error in errors if completed is None or error.order > completed.order]
    return None if len(after) == RECENT_ERRORS else len(after)


def _count_streaks(conn: Connection, ids: list[int], completed: dict[int, LogEvent | None]) -> dict[int, int]:
    """`_failures_since` for each of `ids`, one UNION ALL branch each."""
    branches = []
    for integration_id in ids:
        query = select(literal(integration_id).label("integration_id"), func.count().label("n")).where(
            crm_sync_log.c.integration_id == integration_id, *_of_kind("sync_finished", "error")
        )
        since = completed[integration_id]
        if since is not None:
            query = query.where(
                tuple_(crm_sync_log.c.occurred_at, crm_sync_log.c.id) > tuple_(since.occurred_at, since.id)
            )
        branches.append(query)
    return {row.integration_id: row.n for row in conn.execute(union_all(*branches))}


def _requested(conn: Connection, ids: list[int], now: datetime) -> set[int]:
    """Integrations whose sync is requested, queued or running: `sync_requests.still_active`, batched."""
    table = sync_requests_table
    run_finished = exists().where(crm_sync_log.c.run_id == table.c.run_id, crm_sync_log.c.event_type == "sync_finished")
    rows = conn.execute(
        select(*sync_requests._COLUMNS, run_finished.label("run_finished")).where(
            table.c.integration_id.in_(ids), table.c.status.in_(sync_requests.ACTIVE)
        )
    ).all()
    requested = set()
    for row in rows:
        request = sync_requests.SyncRequest(*row[:-1])
        if not request.expired(now) and (request.status == "pending" or request.run_id is None or not row[-1]):
            requested.add(request.integration_id)
    return requested
