"""The scheduled sync: every 4 hours (Europe/London), an incremental run of every schedulable integration.

A Dagster 1.13 schedule targets exactly one job: the scheduler daemon launches every RunRequest of a tick as
the schedule's own job and ignores `RunRequest.job_name`, and `ScheduleDefinition` takes no `jobs=`. So
"the schedule" is one schedule per CRM, `sync_<crm>_schedule`, all built here from the CRM registry on
the same cron, each asking for the schedulable integrations of its CRM (enabled and not quarantined: a
paused integration, or one whose CRM rejected its credentials after an alert, gets no scheduled sync).
"""

from __future__ import annotations

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from sqlalchemy import Engine

from crm_resources.registry import CRMS, crm_name
from nurturehub_pipelines import run_contract, settings
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.store import sync_requests
from nurturehub_pipelines.store.integration_changes import schedulable
from nurturehub_pipelines.store.tables import utcnow


def schedule_name(crm: str) -> str:
    return f"{run_contract.job_name(crm)}_schedule"


def scheduled_run_requests(
    crm: str, context: ScheduleEvaluationContext, engine: Engine
) -> list[RunRequest] | SkipReason:
    """One incremental run per schedulable integration of the CRM, each recorded as a sync request.

    Schedulable: enabled and not quarantined (`integration_changes.schedulable`). Each run's request is
    written `launched` in the tick's transaction, so its card says "syncing" while the run waits in Dagster's
    queue, Sync Now answers 409, and the request sensor closes it when the run ends. An integration with an
    active request (a pending Sync Now) is not scheduled again. The run_key names the integration and the
    tick, and the request id derives from it, so a tick the daemon retries never launches twice.
    No credentials are decrypted and no `sync_requested` row is written: the log stays the runs' own.
    """
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M%z")
    with engine.begin() as conn:
        rows = schedulable(conn, crm)
        if not rows:
            return SkipReason(f"No {crm_name(crm)} integration is enabled and waiting for its schedule")
        keys = {integration_id: f"integration-{integration_id}-{tick}" for integration_id, _ in rows}
        wanted = {integration_id: sync_requests.scheduled_request_id(key) for integration_id, key in keys.items()}
        recorded = sync_requests.record_scheduled(conn, wanted, utcnow())
    if not recorded:
        return SkipReason(f"Every {crm_name(crm)} integration already has a sync requested, queued or running")
    return [
        RunRequest(
            run_key=keys[integration_id],
            job_name=run_contract.job_name(crm),
            run_config=run_contract.run_config(integration_id, full=False),
            tags={
                **run_contract.run_tags(integration_id, org_id, crm, sync_requests.SCHEDULE),
                run_contract.TAG_REQUEST: wanted[integration_id],
            },
        )
        for integration_id, org_id in rows
        if integration_id in recorded
    ]


def build_sync_schedule(crm: str) -> ScheduleDefinition:
    @schedule(
        name=schedule_name(crm),
        job_name=run_contract.job_name(crm),
        cron_schedule=settings.schedule_cron(),
        execution_timezone=settings.SCHEDULE_TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Incremental sync of every enabled {crm_name(crm)} integration not waiting for new credentials.",
    )
    def sync_schedule(context: ScheduleEvaluationContext, app_db: AppDatabase) -> list[RunRequest] | SkipReason:
        return scheduled_run_requests(crm, context, app_db.engine())

    return sync_schedule


sync_schedules: list[ScheduleDefinition] = [build_sync_schedule(crm) for crm in CRMS]
