"""`prune_sync_log`: the daily schedule that applies the retention rule (`store/retention`) in a Dagster run.

The schedule puts the window it read from NURTUREHUB_LOG_RETENTION_DAYS into the run's config, so the run
shows which window it applied; a run launched by hand without one reads the same setting itself. The
counts deleted per table are the op's output metadata, beside the batch figures.
"""

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    OpExecutionContext,
    Output,
    RunRequest,
    ScheduleEvaluationContext,
    job,
    op,
    schedule,
)

from nurturehub_pipelines import settings
from nurturehub_pipelines.resources import AppDatabase

JOB_NAME = "prune_sync_log_job"
SCHEDULE_NAME = "prune_sync_log"
OP_NAME = "prune_sync_history"
CRON = "30 3 * * *"  # 03:30 UK time: after the night's syncs have started, long before anyone looks
# Ahead of queued sync runs when a slot frees (sync runs have priority 0; alert delivery 100).
TAGS = {"dagster/priority": "50"}


class PruneConfig(Config):
    """`retention_days` unset: NURTUREHUB_LOG_RETENTION_DAYS, else 90."""

    retention_days: int | None = None


@op(name=OP_NAME, description="Deletes sync history older than the retention window, in short batches.")
def prune_sync_history(context: OpExecutionContext, config: PruneConfig, app_db: AppDatabase) -> Output[dict[str, int]]:
    try:
        days = (
            settings.log_retention_days()
            if config.retention_days is None
            else settings.retention_days(config.retention_days, "retention_days")
        )
    except ValueError as exc:
        raise Failure(str(exc)) from exc
    # Imported here: the rule reads the read model's seeks (and so the whole read model), which the code
    # location every sync's run worker imports has no other use for.
    from nurturehub_pipelines.store import retention

    pruned = retention.prune(app_db.engine(), days)
    context.log.info(f"Retention of {days} days: deleted {pruned.deleted}")
    return Output(
        pruned.deleted,
        metadata={
            **pruned.deleted,
            "retention_days": days,
            "integrations": pruned.integrations,
            "batches": pruned.batches,
            "largest_batch_seconds": round(pruned.largest_batch_seconds, 3),
        },
    )


@job(name=JOB_NAME, tags=TAGS, description="Applies the retention rule to the sync history (DESIGN.md, Retention).")
def prune_sync_log_job() -> None:
    prune_sync_history()


def run_config(days: int) -> dict[str, object]:
    return {"ops": {OP_NAME: {"config": {"retention_days": days}}}}


@schedule(
    name=SCHEDULE_NAME,
    job=prune_sync_log_job,
    cron_schedule=CRON,
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily at 03:30 UK time: deletes sync history older than NURTUREHUB_LOG_RETENTION_DAYS (90).",
)
def prune_sync_log(context: ScheduleEvaluationContext) -> RunRequest:
    tick = context.scheduled_execution_time.strftime("%Y%m%d")
    return RunRequest(run_key=f"prune-{tick}", run_config=run_config(settings.log_retention_days()), tags=TAGS)
