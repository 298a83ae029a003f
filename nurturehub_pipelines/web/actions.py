"""Sync Now and Retry: turn a click into a durable sync request, or say why not (409, 429).

One transaction per click. The partial unique index on active sync requests decides between two
concurrent clicks, on SQLite and PostgreSQL alike: one insert wins (202), the other fails (409).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from crm_resources.core.london import london_time
from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import IntegrationRef
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import integrations, utcnow

LABELS = {"sync_now": "Sync Now", "retry": "Retry"}


@dataclass(frozen=True)
class SyncAnswer:
    status: int  # 202 accepted, 409 already queued or running, 429 rate-limit window closed
    message: str
    request_id: str | None = None
    retry_after: int | None = None


def _busy(ref: IntegrationRef) -> SyncAnswer:
    return SyncAnswer(409, f"A sync of {ref.display_name} is already queued or running.")


def request_sync(engine: Engine, ref: IntegrationRef, email: str, trigger: str) -> SyncAnswer:
    """Sync Now (trigger `sync_now`) or Retry (`retry`) of one integration, requested by `email`."""
    label, now = LABELS[trigger], utcnow()
    try:
        with engine.begin() as conn:
            if sync_requests.settle(conn, ref.id, now) or read_model.run_writing(conn, ref.id, now):
                return _busy(ref)
            until = conn.execute(
                select(integrations.c.rate_limited_until).where(integrations.c.id == ref.id)
            ).scalar_one_or_none()
            if until is not None and until > now:
                at = london_time(until, now)
                message = f"{label} refused: {ref.crm_name} rate limit, next attempt at {at}"
                write_event(
                    conn,
                    integration_id=ref.id,
                    event_type="sync_requested",
                    outcome="error",
                    message=message,
                    trigger=trigger,
                    occurred_at=now,
                )
                return SyncAnswer(429, message, retry_after=max(1, math.ceil((until - now).total_seconds())))
            request_id = sync_requests.create(conn, ref.id, trigger, email, now)
            write_event(
                conn,
                integration_id=ref.id,
                event_type="sync_requested",
                outcome="success",
                message=f"{label} requested by {email}",
                trigger=trigger,
                occurred_at=now,
            )
    except IntegrityError:
        return _busy(ref)
    return SyncAnswer(202, f"{label} requested: {ref.display_name} will sync in a few seconds.", request_id)
