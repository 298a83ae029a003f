"""`sync_in_progress`: a sync requested, queued or running, including a scheduled run that has no request.

A request's part is `sync_requests.in_progress`. A run's part is its own rows: a run's step rows younger
than RUN_ACTIVITY_WINDOW, with no `sync_finished` after them, mean "running". A run that dies gets its
`sync_finished` from the failure sensor; the window only bounds the scan if that sensor is down. The
newest-row seek is answered by `ix_crm_sync_log_integration_newest (integration_id, occurred_at, id)`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from nurturehub_pipelines.read_model.events import LogEvent
from nurturehub_pipelines.read_model.kinds import Seek
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.tables import crm_sync_log

RUN_ACTIVITY_WINDOW = timedelta(hours=6)
STEP_EVENTS = ("auth_refresh", "contact_import", "lead_update")


def newest_run_row(now: datetime) -> Seek:
    """The newest row a run wrote within the window (`sync_requested` rows are the web app's, not a run's)."""
    return Seek(
        "writing",
        1,
        (
            crm_sync_log.c.occurred_at >= now - RUN_ACTIVITY_WINDOW,
            crm_sync_log.c.run_id.is_not(None),
            crm_sync_log.c.event_type != "sync_requested",
        ),
    )


def writing(newest_run_rows: list[LogEvent]) -> bool:
    """A step row as the newest run row means the run has not finished yet."""
    return bool(newest_run_rows) and newest_run_rows[0].event_type in STEP_EVENTS


def run_writing(conn: Connection, integration_id: int, now: datetime) -> bool:
    """Whether a run (of any trigger, scheduled included) has written step rows but no sync_finished yet."""
    return writing(newest_run_row(now).rows(conn, integration_id))


def sync_in_progress(conn: Connection, integration_id: int, now: datetime) -> bool:
    """Requested (pending), queued or running (launched, its run not finished), or a run writing rows."""
    requested = integration_id in sync_requests.in_progress(conn, [integration_id], now)
    return requested or run_writing(conn, integration_id, now)
