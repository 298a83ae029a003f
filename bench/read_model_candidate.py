"""A candidate `read_model.cards` for PostgreSQL: every card of an organisation in 2-3 statements, not 7 each.

Measured beside the real one by bench/read_model_bench.py (and checked to return the same cards), so the
README's proposed change to nurturehub_pipelines/read_model.py comes with a figure. Nothing imports it.

The same index seeks as today, but one round trip: a LATERAL join runs, for each integration of the
organisation, the five "newest of a kind" seeks the card needs (newest success, newest warning, 5 newest
failed syncs, 5 newest refused requests, newest row of a run in the activity window). The failure streak is
counted from those rows unless all 5 fetched failures are newer than the last completed sync; only then is it
counted by the same range scan as today, for those integrations only, in one more statement. The active sync
requests of all the organisation's integrations come in one statement too.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import (
    RECENT_ERRORS,
    RUN_ACTIVITY_WINDOW,
    STEP_EVENTS,
    Card,
    IntegrationRef,
    LogEvent,
    _health,
    _newest,
    integration_refs,
    next_sync_at,
)
from nurturehub_pipelines.store import sync_requests

_COLUMNS = (
    "l.id, l.occurred_at, l.event_type, l.records_affected, l.records_skipped, l.outcome, l.message, l.run_id, "
    "l.trigger"
)


def _seek(tag: str, where: str, limit: int) -> str:
    return (
        f"(SELECT '{tag}' AS tag, {_COLUMNS} FROM crm_sync_log l WHERE l.integration_id = i.id AND {where} "
        f"ORDER BY l.occurred_at DESC, l.id DESC LIMIT {limit})"
    )


NEWEST_OF_EACH_KIND = text(
    "SELECT i.id AS integration_id, k.* FROM integrations i CROSS JOIN LATERAL ("
    + " UNION ALL ".join(
        [
            _seek("ok", "l.event_type = 'sync_finished' AND l.outcome = 'success'", 1),
            _seek("warning", "l.event_type = 'sync_finished' AND l.outcome = 'warning'", 1),
            _seek("error", "l.event_type = 'sync_finished' AND l.outcome = 'error'", RECENT_ERRORS),
            _seek("refused", "l.event_type = 'sync_requested' AND l.outcome = 'error'", RECENT_ERRORS),
            _seek(
                "writing",
                "l.occurred_at >= :since AND l.run_id IS NOT NULL AND l.event_type <> 'sync_requested'",
                1,
            ),
        ]
    )
    + ") k WHERE i.org_id = :org"
)


def cards(conn: Connection, org_id: int, now: datetime | None = None) -> list[Card]:
    now = now or read_model.utcnow()
    next_tick = next_sync_at(now)
    refs = integration_refs(conn, org_id)
    rows: dict[int, dict[str, list[LogEvent]]] = defaultdict(lambda: defaultdict(list))
    for row in conn.execute(NEWEST_OF_EACH_KIND, {"org": org_id, "since": now - RUN_ACTIVITY_WINDOW}):
        rows[row.integration_id][row.tag].append(LogEvent(row.id, row.occurred_at.astimezone(UTC), *row[4:]))
    completed_of = {ref.id: _newest(rows[ref.id]["ok"] + rows[ref.id]["warning"]) for ref in refs}
    failures = {ref.id: _streak(rows[ref.id]["error"], completed_of[ref.id]) for ref in refs}
    uncounted = [ref.id for ref in refs if failures[ref.id] is None]
    if uncounted:
        failures.update(_count_streaks(conn, uncounted, completed_of))
    requested = _requested(conn, [ref.id for ref in refs], now)
    return [
        _card(ref, rows[ref.id], completed_of[ref.id], failures[ref.id] or 0, ref.id in requested, now, next_tick)
        for ref in refs
    ]


def _streak(errors: list[LogEvent], completed: LogEvent | None) -> int | None:
    """Failed syncs after the last completed one, if the fetched ones settle it (None: count them)."""
    after = [e for e in errors if completed is None or e.order > completed.order]
    return None if len(after) == RECENT_ERRORS else len(after)


def _count_streaks(conn: Connection, ids: list[int], completed_of: dict[int, LogEvent | None]) -> dict[int, int]:
    """The range count read_model does today, one UNION ALL branch per integration still to count."""
    parts, params = [], {}
    for n, integration_id in enumerate(ids):
        completed = completed_of[integration_id]
        bound = ""
        if completed is not None:
            bound = f" AND (occurred_at, id) > (:at{n}, :id{n})"
            params |= {f"at{n}": completed.occurred_at, f"id{n}": completed.id}
        parts.append(
            f"SELECT {integration_id} AS integration_id, count(*) AS n FROM crm_sync_log WHERE integration_id = "
            f"{integration_id} AND event_type = 'sync_finished' AND outcome = 'error'{bound}"
        )
    return {row.integration_id: row.n for row in conn.execute(text(" UNION ALL ".join(parts)), params)}


def _requested(conn: Connection, ids: list[int], now: datetime) -> set[int]:
    """Integrations whose sync is requested or queued: their active requests, in one statement."""
    if not ids:
        return set()
    found = conn.execute(
        text(
            "SELECT id, integration_id, trigger, requested_by, requested_at, status, run_id, launched_at "
            "FROM sync_requests WHERE integration_id = ANY(:ids) AND status IN ('pending', 'launched')"
        ),
        {"ids": ids},
    ).all()
    return {
        row.integration_id for row in found if sync_requests.still_active(conn, sync_requests.SyncRequest(*row), now)
    }


def _card(
    ref: IntegrationRef,
    kinds: dict[str, list[LogEvent]],
    completed: LogEvent | None,
    failures: int,
    requested: bool,
    now: datetime,
    next_tick: datetime,
) -> Card:
    latest = _newest(kinds["ok"] + kinds["warning"] + kinds["error"][:1])
    health, reason = _health(latest, completed, now)
    errors = sorted(kinds["error"] + kinds["refused"], key=lambda event: event.order, reverse=True)
    writing = kinds["writing"][0].event_type in STEP_EVENTS if kinds["writing"] else False
    return Card(
        id=ref.id,
        crm=ref.crm,
        crm_name=ref.crm_name,
        name=ref.display_name,
        last_synced_at=completed.occurred_at if completed else None,
        health=health,
        health_reason=reason,
        consecutive_failures=failures,
        sync_in_progress=requested or writing,
        next_sync_at=next_tick if ref.enabled else None,
        recent_errors=tuple(errors[:RECENT_ERRORS]),
    )


def same_cards(conn: Connection, org_id: int, now: datetime) -> bool:
    """The candidate answers exactly what read_model.cards answers (the bench checks every organisation)."""
    current: Any = read_model.cards(conn, org_id, now)
    return bool(current == cards(conn, org_id, now))
