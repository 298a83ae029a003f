"""Failure sensors: a sync_finished row for runs that died, and the owner alerts for failure streaks.

Both sensors are plain polling sensors rather than `run_failure_sensor`s, and both keep their real state
in the app database, so nothing they do depends on seeing each Dagster event exactly once:
- `run_outcome_sensor` reads the sync runs that ended FAILURE or CANCELED (a killed run worker is marked
  failed by its code server, a hung or orphaned run by run monitoring) and writes the `sync_finished`/
  `error` row the run could not write, unless the run has one. It re-reads a minute of overlap every tick;
  the run_id check makes that harmless, and no page size limits how many runs one tick handles.
- `alert_sensor` evaluates failure streaks from `crm_sync_log` and delivers the outbox
  (`nurturehub_pipelines.alerts`). Ticking on every daemon loop (5 s) keeps an alert inside the 60-second
  promise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.dagster_run import RunRecord
from sqlalchemy import Connection, select

from nurturehub_pipelines import alerts
from nurturehub_pipelines.run_contract import TAG_INTEGRATION, TAG_TRIGGER
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.sync_log import TRIGGERS, write_event
from nurturehub_pipelines.store.tables import crm_sync_log

# The daemon's sensor loop comes round every 5 s and skips a sensor whose last tick began less than its
# minimum interval ago; 5 would land just short and tick every 10 s, so 2 means "every loop".
INTERVAL_SECONDS = 2
OVERLAP = timedelta(seconds=60)  # run updates can commit out of order; re-reading a minute is idempotent
FIRST_LOOKBACK = timedelta(days=1)  # without a cursor, catch the runs that ended while the daemon was down
ENDED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]

CANCELLED_MESSAGE = "The sync run was cancelled before it finished; the next sync will try again."
DIED_MESSAGE = (
    "The sync run stopped without finishing (its process was killed or crashed); the next sync will try again."
)
NOT_STARTED_MESSAGE = "The sync run could not start; the next sync will try again."


@dataclass(frozen=True)
class EndedRun:
    """A sync run that ended without success, as far as the log needs to know it."""

    run_id: str
    integration_id: int
    trigger: str
    status: DagsterRunStatus
    started: bool
    ended_at: datetime

    @property
    def message(self) -> str:
        if self.status == DagsterRunStatus.CANCELED:
            return CANCELLED_MESSAGE
        return DIED_MESSAGE if self.started else NOT_STARTED_MESSAGE


def ended_sync_run(record: RunRecord) -> EndedRun | None:
    """The run as an EndedRun, if it is a sync run (integration id from its tag, else its run config)."""
    run = record.dagster_run
    if not run.job_name.startswith("sync_"):
        return None
    integration_id: Any = run.tags.get(TAG_INTEGRATION)
    if integration_id is None:
        op_config = (run.run_config or {}).get("ops", {}).get("auth_refresh", {}).get("config", {})
        integration_id = op_config.get("integration_id")
    try:
        integration_id = int(integration_id)
    except (TypeError, ValueError):
        return None
    trigger = run.tags.get(TAG_TRIGGER, "manual")
    ended = record.end_time or record.update_timestamp.timestamp()
    return EndedRun(
        run_id=run.run_id,
        integration_id=integration_id,
        trigger=trigger if trigger in TRIGGERS else "manual",
        status=run.status,
        started=record.start_time is not None,
        ended_at=datetime.fromtimestamp(ended, UTC),
    )


def record_ended_runs(conn: Connection, runs: list[EndedRun]) -> list[int]:
    """Write `sync_finished`/`error` for each run that has no `sync_finished` row yet; returns the new ids."""
    if not runs:
        return []
    finished = set(
        conn.execute(
            select(crm_sync_log.c.run_id).where(
                crm_sync_log.c.event_type == "sync_finished",
                crm_sync_log.c.run_id.in_([run.run_id for run in runs]),
            )
        ).scalars()
    )
    return [
        write_event(
            conn,
            integration_id=run.integration_id,
            run_id=run.run_id,
            trigger=run.trigger,
            event_type="sync_finished",
            outcome="error",
            message=run.message,
            occurred_at=run.ended_at,
        )
        for run in runs
        if run.run_id not in finished
    ]


@sensor(
    name="run_outcome_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes the sync_finished/error row of sync runs that failed or were cancelled without one.",
)
def run_outcome_sensor(context: SensorEvaluationContext) -> SensorResult:
    now = datetime.now(UTC)
    since = (
        datetime.fromtimestamp(json.loads(context.cursor)["updated"], UTC) if context.cursor else now - FIRST_LOOKBACK
    )
    records = context.instance.get_run_records(filters=RunsFilter(statuses=ENDED, updated_after=since - OVERLAP))
    runs = [run for run in map(ended_sync_run, records) if run is not None]
    with db.engine().begin() as conn:
        written = record_ended_runs(conn, runs)
    newest = max((record.update_timestamp for record in records), default=since)
    cursor = json.dumps({"updated": max(newest, since).timestamp()})
    if written:
        context.log.info(f"Wrote sync_finished/error for {len(written)} runs that ended without one")
    return SensorResult(
        cursor=cursor,
        skip_reason=SkipReason(f"{len(runs)} ended sync runs checked, {len(written)} sync_finished rows written"),
    )


@sensor(
    name="alert_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Emails the owner on the failure streak's threshold and on recovery, through the outbox.",
)
def alert_sensor(context: SensorEvaluationContext) -> SkipReason:
    evaluation, delivery = alerts.run_once(db.engine(), AlertSettings.from_env())
    if evaluation.alerts or evaluation.recoveries or delivery.sent or delivery.failed:
        context.log.info(f"{evaluation}; {delivery}")
    return SkipReason(
        f"{evaluation.integrations} integrations evaluated, {evaluation.alerts} alerts and "
        f"{evaluation.recoveries} recoveries queued, {delivery.sent} emails sent, {delivery.failed} to retry"
    )
