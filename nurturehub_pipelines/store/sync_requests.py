"""Sync Now / Retry requests: durable rows that wait for the daemon, at most one active per integration.

Lifecycle: `pending` (written by the web app) -> `launched` (the sensor yielded its RunRequest; `run_id`
is filled in once Dagster has created the run) -> `finished` (its run wrote `sync_finished`, or ended
without one) or `expired` (it outlived its time to live). Only `pending` and `launched` are active; a
partial unique index allows one active request per integration, which is what makes the 409 race-safe.

The schedule records what it asks for too (`record_scheduled`): a request of trigger `schedule`, created
`launched`, so a scheduled run waiting in Dagster's queue shows as in progress and Sync Now answers 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, exists, false, insert, or_, select, update

from nurturehub_pipelines.store.dialect import dialect_insert
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, sync_requests

ACTIVE = ("pending", "launched")
# A pending request waits this long for the daemon (an outage of hours must not lose it).
PENDING_TTL = timedelta(hours=24)
# A launched request whose run has said nothing for this long no longer blocks Sync Now.
LAUNCHED_TTL = timedelta(hours=6)
SCHEDULE = "schedule"
# A scheduled request whose run Dagster has not created by then (the tick died before submitting it) is
# closed by the request sensor, which looks for the run first: the schedule launches its runs itself, so the
# sensor never relaunches one.
SCHEDULED_RUN_GRACE = timedelta(minutes=5)
_SCHEDULE_IDS = uuid.UUID("6c1f7f0e-2a51-4f55-9a5e-5b7d0c3e9a10")
_CHUNK = 500


@dataclass(frozen=True)
class SyncRequest:
    id: str
    integration_id: int
    trigger: str
    requested_by: str | None
    requested_at: datetime
    status: str
    run_id: str | None
    launched_at: datetime | None

    def expired(self, now: datetime) -> bool:
        if self.status == "pending":
            return now - self.requested_at >= PENDING_TTL
        return now - (self.launched_at or self.requested_at) >= LAUNCHED_TTL


_COLUMNS = (
    sync_requests.c.id,
    sync_requests.c.integration_id,
    sync_requests.c.trigger,
    sync_requests.c.requested_by,
    sync_requests.c.requested_at,
    sync_requests.c.status,
    sync_requests.c.run_id,
    sync_requests.c.launched_at,
)


def active_request(conn: Connection, integration_id: int) -> SyncRequest | None:
    """The integration's one active request (served by the partial unique index)."""
    row = conn.execute(
        select(*_COLUMNS)
        .where(sync_requests.c.integration_id == integration_id, sync_requests.c.status.in_(ACTIVE))
        .limit(1)
    ).first()
    return SyncRequest(*row) if row else None


def _finished(run_id: object) -> ColumnElement[bool]:
    """The run's `sync_finished` row (`run_id` a value or a column): served by the partial run_id index."""
    return and_(crm_sync_log.c.run_id == run_id, crm_sync_log.c.event_type == "sync_finished")


def run_finished(conn: Connection, run_id: str) -> bool:
    """Whether the run has written its `sync_finished` row (one seek on the partial run_id index)."""
    return conn.execute(select(crm_sync_log.c.id).where(_finished(run_id)).limit(1)).first() is not None


def _scheduled_since(integration_id: object, since: object) -> ColumnElement[bool]:
    """A scheduled run's `sync_finished` row of the integration at or after `since` (values or columns)."""
    return and_(
        crm_sync_log.c.integration_id == integration_id,
        crm_sync_log.c.occurred_at >= since,
        crm_sync_log.c.event_type == "sync_finished",
        crm_sync_log.c.trigger == SCHEDULE,
    )


def _stands(request: SyncRequest, now: datetime, finished: Callable[[SyncRequest], bool]) -> bool:
    """The one rule of `still_active` and `in_progress`; `finished` is asked last, only when it decides.

    A scheduled request not yet linked to its run (the request sensor links a batch a tick, and one tick
    of the schedule can launch thousands) is done once a scheduled run of its integration has finished
    since it was recorded: the schedule records no second request while one is active.
    """
    if request.expired(now):
        return False
    if request.status == "pending" or (request.run_id is None and request.trigger != SCHEDULE):
        return True
    return not finished(request)


def _done(conn: Connection, request: SyncRequest) -> bool:
    if request.run_id is not None:
        return run_finished(conn, request.run_id)
    found = select(crm_sync_log.c.id).where(_scheduled_since(request.integration_id, request.requested_at))
    return conn.execute(found.limit(1)).first() is not None


def still_active(conn: Connection, request: SyncRequest, now: datetime) -> bool:
    """True while the request stands for a sync that is requested, queued or running."""
    return _stands(request, now, lambda request: _done(conn, request))


# Whether an active request's run (or, not yet linked, a scheduled run since it) has finished.
_DONE = or_(
    and_(sync_requests.c.run_id.is_not(None), exists().where(_finished(sync_requests.c.run_id))),
    and_(
        sync_requests.c.run_id.is_(None),
        exists().where(_scheduled_since(sync_requests.c.integration_id, sync_requests.c.requested_at)),
    ),
)

# `in_progress`'s one statement, built once: each active request of the integrations, with `_DONE`.
_IN_PROGRESS = select(*_COLUMNS, _DONE.label("done")).where(
    sync_requests.c.integration_id.in_(bindparam("integration_ids", expanding=True)),
    sync_requests.c.status.in_(ACTIVE),
)


def in_progress(conn: Connection, integration_ids: Collection[int], now: datetime) -> set[int]:
    """Those of the integrations whose active request still stands: `still_active` for many, in one statement."""
    if not integration_ids:
        return set()
    rows = conn.execute(_IN_PROGRESS, {"integration_ids": list(integration_ids)}).all()
    return {row.integration_id for row in rows if stands(tuple(row), now)}


# For a statement over integrations that brings each one's active request along instead of asking
# `in_progress` (the page's cards: one statement, not two): `outerjoin(sync_requests, joins_active(...))`
# gives at most one row per integration, since the partial unique index allows one active request each.
# Labelled, so they can sit beside the integration's own `id`; `_DONE` only where there is a request.
REQUEST_COLUMNS = (
    *(column.label(f"request_{column.name}") for column in _COLUMNS),
    case((sync_requests.c.id.is_(None), false()), else_=_DONE).label("request_done"),
)


def joins_active(integration_id: ColumnElement[int]) -> ColumnElement[bool]:
    return and_(sync_requests.c.integration_id == integration_id, sync_requests.c.status.in_(ACTIVE))


def stands(values: Sequence[Any], now: datetime) -> bool:
    """`in_progress`'s answer for one integration, from the values of `_COLUMNS` and `done` (or of
    `REQUEST_COLUMNS`: all None where it has no active request)."""
    *request, done = values
    if request[0] is None:
        return False
    return _stands(SyncRequest(*request), now, lambda _: bool(done))


def close(conn: Connection, request_id: str, status: str, now: datetime) -> None:
    """Move an active request to `finished` or `expired`; a no-op if something closed it already."""
    conn.execute(
        update(sync_requests)
        .where(sync_requests.c.id == request_id, sync_requests.c.status.in_(ACTIVE))
        .values(status=status, finished_at=now)
    )


def settle(conn: Connection, integration_id: int, now: datetime) -> SyncRequest | None:
    """The active request if it still stands; one that no longer does is closed first."""
    request = active_request(conn, integration_id)
    if request is None or still_active(conn, request, now):
        return request
    close(conn, request.id, "expired" if request.expired(now) else "finished", now)
    return None


def create(conn: Connection, integration_id: int, trigger: str, requested_by: str | None, now: datetime) -> str:
    """Insert a pending request and return its opaque id.

    Raises IntegrityError when another request of the integration is active, including one inserted
    concurrently: the caller's transaction must then be rolled back and the answer is 409.
    """
    request_id = str(uuid.uuid4())
    conn.execute(
        insert(sync_requests).values(
            id=request_id,
            integration_id=integration_id,
            trigger=trigger,
            requested_by=requested_by,
            requested_at=now,
            status="pending",
        )
    )
    return request_id


@dataclass(frozen=True)
class Launchable:
    """A request with what the sensor needs to build its run (job, config and tags)."""

    request: SyncRequest
    org_id: int
    crm: str


def with_status(conn: Connection, status: str, limit: int, linked: bool | None = None) -> list[Launchable]:
    """The oldest requests in one status, joined to their integration (bounded: one tick's batch).

    `linked`: only those whose run is known (True), or not yet (False).
    """
    query = (
        select(*_COLUMNS, integrations.c.org_id, integrations.c.crm)
        .join(integrations, integrations.c.id == sync_requests.c.integration_id)
        .where(sync_requests.c.status == status)
    )
    if linked is not None:
        query = query.where(sync_requests.c.run_id.is_not(None) if linked else sync_requests.c.run_id.is_(None))
    rows = conn.execute(query.order_by(sync_requests.c.requested_at, sync_requests.c.id).limit(limit)).all()
    return [Launchable(SyncRequest(*row[:8]), org_id=row.org_id, crm=row.crm) for row in rows]


def mark_launched(conn: Connection, request_id: str, now: datetime) -> None:
    conn.execute(
        update(sync_requests)
        .where(sync_requests.c.id == request_id, sync_requests.c.status == "pending")
        .values(status="launched", launched_at=now)
    )


def relaunched(conn: Connection, request_id: str, now: datetime) -> None:
    """Restart the grace period of a launched request whose RunRequest was yielded again."""
    conn.execute(
        update(sync_requests)
        .where(sync_requests.c.id == request_id, sync_requests.c.status == "launched")
        .values(launched_at=now)
    )


def set_run_id(conn: Connection, request_id: str, run_id: str) -> None:
    conn.execute(update(sync_requests).where(sync_requests.c.id == request_id).values(run_id=run_id))


def scheduled_request_id(run_key: str) -> str:
    """The request id of a scheduled run: derived from its run key, so a retried tick finds its own requests."""
    return str(uuid.uuid5(_SCHEDULE_IDS, run_key))


def record_scheduled(conn: Connection, wanted: Mapping[int, str], now: datetime) -> set[int]:
    """Record a `launched` schedule request per integration (id -> request id); return those it stands for.

    An integration whose other request is active (a pending Sync Now, a run still going) is left out; one
    whose request no longer stands is closed first. A request this tick already recorded (the daemon retried
    the tick) is returned again, so its run is asked for again under the same run key, which Dagster dedupes.
    """
    ids = list(wanted)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        others = conn.execute(
            select(*_COLUMNS).where(
                sync_requests.c.integration_id.in_(chunk),
                sync_requests.c.status.in_(ACTIVE),
                sync_requests.c.id.not_in([wanted[i] for i in chunk]),
            )
        ).all()
        for request in map(lambda row: SyncRequest(*row), others):
            if not still_active(conn, request, now):
                close(conn, request.id, "expired" if request.expired(now) else "finished", now)
        # ON CONFLICT DO NOTHING: the partial unique index keeps out an integration with an active request
        # (a Sync Now inserted meanwhile included), the primary key a request this tick recorded already.
        conn.execute(
            dialect_insert(conn, sync_requests).on_conflict_do_nothing(),
            [
                {
                    "id": wanted[i],
                    "integration_id": i,
                    "trigger": SCHEDULE,
                    "requested_by": None,
                    "requested_at": now,
                    "status": "launched",
                    "launched_at": now,
                }
                for i in chunk
            ],
        )
    recorded: set[int] = set()
    request_ids = list(wanted.values())
    for start in range(0, len(request_ids), _CHUNK):
        recorded.update(
            conn.execute(
                select(sync_requests.c.integration_id).where(
                    sync_requests.c.id.in_(request_ids[start : start + _CHUNK]), sync_requests.c.status.in_(ACTIVE)
                )
            ).scalars()
        )
    return recorded
