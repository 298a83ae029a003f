"""Sync Now and Retry: turn each pending sync request into a full-sync run of its integration's job, and
follow every launched request (the schedule's included) until its run ends.

The request row is the durable part: while the daemon is down it just waits. Each tick
- launches pending requests: one RunRequest each (run_key = request id, so a second yield of the same
  request can never start a second run), marked `launched` in the same transaction that decides to yield;
- follows launched requests: finds the run by its request tag, and closes the request once its run has
  written `sync_finished` or ended without one (the failure sensor writes that row for it). A launched
  request with no run after a minute (a daemon that died between this tick and run creation) is yielded
  again; a scheduled one (the schedule records its runs as launched requests) is never yielded here: with
  no run after `SCHEDULED_RUN_GRACE` it is closed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import Connection, Engine

from nurturehub_pipelines import run_contract
from nurturehub_pipelines.jobs import SYNC_JOBS
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.sync_requests import Launchable
from nurturehub_pipelines.store.tables import utcnow

PENDING_BATCH = 25  # launched per tick; the rest wait two seconds
FOLLOW_BATCH = 100  # linked requests checked for their run's end per tick; the log shows an ended run anyway
LINK_BATCH = 1000  # launched requests looked up by tag per tick (ten Dagster queries)
RELAUNCH_AFTER = timedelta(seconds=60)


def run_request(item: Launchable) -> RunRequest:
    request = item.request
    tags = run_contract.run_tags(request.integration_id, item.org_id, item.crm, request.trigger)
    return RunRequest(
        run_key=request.id,
        job_name=run_contract.job_name(item.crm),
        # Sync Now and Retry are full syncs; a scheduled one (only ever yielded here again) stays incremental.
        run_config=run_contract.run_config(request.integration_id, full=request.trigger != sync_requests.SCHEDULE),
        tags={**tags, run_contract.TAG_REQUEST: request.id},
    )


def launch_pending(conn: Connection, now: datetime, job_names: set[str]) -> Iterator[RunRequest]:
    for item in sync_requests.with_status(conn, "pending", PENDING_BATCH):
        request = item.request
        if request.expired(now):
            sync_requests.close(conn, request.id, "expired", now)
        elif run_contract.job_name(item.crm) not in job_names:
            write_event(
                conn,
                integration_id=request.integration_id,
                event_type="sync_requested",
                outcome="error",
                message=f"The requested sync could not start: NurtureHub has no sync job for {item.crm}",
                trigger=request.trigger,
                occurred_at=now,
            )
            sync_requests.close(conn, request.id, "expired", now)
        else:
            yield run_request(item)
            sync_requests.mark_launched(conn, request.id, now)


def link_runs(instance: DagsterInstance, conn: Connection, now: datetime) -> Iterator[RunRequest]:
    """Find the runs of launched requests by their request tag, a hundred a query.

    A request whose run does not exist yet is yielded again after a minute (a daemon that died between the
    tick and run creation); a scheduled one never is (the schedule launched it) and is closed once it has
    had no run for `SCHEDULED_RUN_GRACE`. One tick of the schedule can launch thousands of requests, so this
    batch is wide: a queued run's request must be linked for its card to stay "syncing".
    """
    items = sync_requests.with_status(conn, "launched", LINK_BATCH, linked=False)
    found: dict[str, str] = {}
    for start in range(0, len(items), 100):
        ids = [item.request.id for item in items[start : start + 100]]
        for run in instance.get_runs(filters=RunsFilter(tags={run_contract.TAG_REQUEST: ids})):
            found.setdefault(run.tags[run_contract.TAG_REQUEST], run.run_id)
    for item in items:
        request = item.request
        waited = now - (request.launched_at or request.requested_at)
        scheduled = request.trigger == sync_requests.SCHEDULE
        if request.id in found:
            sync_requests.set_run_id(conn, request.id, found[request.id])
        elif request.expired(now) or (scheduled and waited >= sync_requests.SCHEDULED_RUN_GRACE):
            sync_requests.close(conn, request.id, "expired", now)
        elif waited >= RELAUNCH_AFTER and not scheduled:
            yield run_request(item)
            sync_requests.relaunched(conn, request.id, now)


def follow_launched(instance: DagsterInstance, conn: Connection, now: datetime) -> None:
    """Close launched requests whose run wrote `sync_finished` or ended without one."""
    for item in sync_requests.with_status(conn, "launched", FOLLOW_BATCH, linked=True):
        request, run_id = item.request, item.request.run_id
        if run_id is None:  # never, as linked=True: it narrows the type
            continue
        if sync_requests.run_finished(conn, run_id):
            sync_requests.close(conn, request.id, "finished", now)
            continue
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            sync_requests.close(conn, request.id, "finished", now)
        elif request.expired(now):
            sync_requests.close(conn, request.id, "expired", now)


def evaluate(
    instance: DagsterInstance, engine: Engine, job_names: set[str], now: datetime | None = None
) -> list[RunRequest]:
    """One tick: every decision and its mark commit together, before Dagster sees the run requests."""
    now = now or utcnow()
    with engine.begin() as conn:
        relaunched = list(link_runs(instance, conn, now))
        follow_launched(instance, conn, now)
        return [*relaunched, *launch_pending(conn, now, job_names)]


def build_sync_request_sensor(jobs: Sequence[JobDefinition]) -> SensorDefinition:
    job_names = {job.name for job in jobs}

    @sensor(
        name="sync_request_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=2,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts a full sync for each Sync Now / Retry request (sync_requests table).",
    )
    def sync_request_sensor(context: SensorEvaluationContext, app_db: AppDatabase) -> SensorResult | SkipReason:
        run_requests = evaluate(context.instance, app_db.engine(), job_names)
        if not run_requests:
            return SkipReason("No sync request is waiting.")
        return SensorResult(run_requests=run_requests)

    return sync_request_sensor


sync_request_sensor = build_sync_request_sensor(SYNC_JOBS)
