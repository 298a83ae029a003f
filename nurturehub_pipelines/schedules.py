"""The scheduled sync: every 4 hours (Europe/London), an incremental run of every enabled integration.

A Dagster 1.13 schedule targets exactly one job: the scheduler daemon launches every RunRequest of a tick as
the schedule's own job and ignores `RunRequest.job_name`, and `ScheduleDefinition` takes no `jobs=`. So
"the schedule" is one schedule per CRM, `sync_<crm>_schedule`, all built here from the CRM registry on
the same cron, each asking for the enabled integrations of its CRM.
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
from sqlalchemy import Engine, select

from crm_resources.registry import CRMS, crm_name
from nurturehub_pipelines import run_contract, settings
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.store.tables import integrations


def schedule_name(crm: str) -> str:
    return f"{run_contract.job_name(crm)}_schedule"


def scheduled_run_requests(
    crm: str, context: ScheduleEvaluationContext, engine: Engine
) -> list[RunRequest] | SkipReason:
    """One incremental run per enabled integration of the CRM: one query, no credentials decrypted.

    The run_key names the integration and the tick, so a tick the daemon retries never launches twice.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(integrations.c.id, integrations.c.org_id)
            .where(integrations.c.crm == crm, integrations.c.enabled.is_(True))
            .order_by(integrations.c.id)
        ).all()
    if not rows:
        return SkipReason(f"No enabled {crm_name(crm)} integrations")
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M%z")
    return [
        RunRequest(
            run_key=f"integration-{row.id}-{tick}",
            job_name=run_contract.job_name(crm),
            run_config=run_contract.run_config(row.id, full=False),
            tags=run_contract.run_tags(row.id, row.org_id, crm, "schedule"),
        )
        for row in rows
    ]


def build_sync_schedule(crm: str) -> ScheduleDefinition:
    @schedule(
        name=schedule_name(crm),
        job_name=run_contract.job_name(crm),
        cron_schedule=settings.schedule_cron(),
        execution_timezone=settings.SCHEDULE_TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Incremental sync of every enabled {crm_name(crm)} integration.",
    )
    def sync_schedule(context: ScheduleEvaluationContext, app_db: AppDatabase) -> list[RunRequest] | SkipReason:
        return scheduled_run_requests(crm, context, app_db.engine())

    return sync_schedule


sync_schedules: list[ScheduleDefinition] = [build_sync_schedule(crm) for crm in CRMS]
