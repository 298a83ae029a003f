"""`run_outcome_sensor`: the `sync_finished`/`error` row for sync runs that ended without writing one.

A plain polling sensor rather than a `run_failure_sensor`: it reads the sync runs that ended FAILURE or
CANCELED (a killed run worker is marked failed by its code server, a hung or orphaned run by run
monitoring) and writes the row the run could not write, unless the run has one. It re-reads a minute of
overlap every tick; the run_id check makes that harmless, and no page size limits how many runs one tick
handles. The alerts then count that row like any other failure.

A run executed in its own process (`nurturehub sync`) has no run worker for run monitoring to watch: it
beats instead (`nurturehub_pipelines/sync/heartbeat.py`), and each tick first marks failed, through the
public `DagsterInstance.report_run_failed`, every such run that stopped beating; the same tick then writes
its row. So a killed `nurturehub sync` is failed, with its row, about two minutes after its last beat.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRecord,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from sqlalchemy import Connection, select, update

from crm_resources.core import ErrorKind
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.run_contract import integration_of, trigger_of
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import crm_sync_log, integrations
from nurturehub_pipelines.sync import heartbeat
from sensors import EVERY_DAEMON_LOOP

OVERLAP = timedelta(seconds=60)  # run updates can commit out of order; re-reading a minute is idempotent
FIRST_LOOKBACK = timedelta(days=1)  # without a cursor, catch the runs that ended while the daemon was down
ENDED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]

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
    """The run as an EndedRun, if it is a sync run of a known integration."""
    run = record.dagster_run
    if not run.job_name.startswith("sync_"):
        return None
    integration_id = integration_of(run.tags, run.run_config)
    if integration_id is None:
        return None
    ended = record.end_time or record.update_timestamp.timestamp()
    return EndedRun(
        run_id=run.run_id,
        integration_id=integration_id,
        trigger=trigger_of(run.tags),
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
    missing = [run for run in runs if run.run_id not in finished]
    if missing:
        # A run that died is NurtureHub's failure, not the CRM refusing the credentials: the quarantine
        # rule must not read an earlier rejection as this failure's kind.
        conn.execute(
            update(integrations)
            .where(integrations.c.id.in_({run.integration_id for run in missing}))
            .values(last_failure_kind=ErrorKind.INTERNAL.value)
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
        for run in missing
    ]


def fail_stopped_runs(instance: DagsterInstance, now: datetime) -> list[str]:
    """Mark failed each unfinished sync run whose process stopped beating; returns their run ids."""
    failed = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        if not run.job_name.startswith("sync_"):
            continue
        last = heartbeat.stopped_since(run.tags, now)
        if last is None:
            continue
        instance.report_run_failed(
            run,
            message=f"The process running this sync stopped: no heartbeat since {last.isoformat()} "
            f"(it beats every {run.tags.get(heartbeat.TAG_HEARTBEAT_SECONDS)} s). It was killed or crashed, so "
            "the run is marked failed.",
        )
        failed.append(run.run_id)
    return failed


@sensor(
    name="run_outcome_sensor",
    minimum_interval_seconds=EVERY_DAEMON_LOOP,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes the sync_finished/error row of sync runs that failed or were cancelled without one.",
)
def run_outcome_sensor(context: SensorEvaluationContext, app_db: AppDatabase) -> SensorResult:
    now = datetime.now(UTC)
    stopped = fail_stopped_runs(context.instance, now)
    if stopped:
        context.log.info(f"Marked failed {len(stopped)} sync runs whose process stopped beating: {stopped}")
    since = (
        datetime.fromtimestamp(json.loads(context.cursor)["updated"], UTC) if context.cursor else now - FIRST_LOOKBACK
    )
    records = context.instance.get_run_records(filters=RunsFilter(statuses=ENDED, updated_after=since - OVERLAP))
    runs = [run for run in map(ended_sync_run, records) if run is not None]
    with app_db.engine().begin() as conn:
        written = record_ended_runs(conn, runs)
    newest = max((record.update_timestamp for record in records), default=since)
    cursor = json.dumps({"updated": max(newest, since).timestamp()})
    if written:
        context.log.info(f"Wrote sync_finished/error for {len(written)} runs that ended without one: {written}")
        return SensorResult(cursor=cursor)
    return SensorResult(cursor=cursor, skip_reason=f"{len(runs)} ended sync runs checked, none without its row")
