"""The daily sync health report: per CRM and per organisation, how the syncs went, in the Catalog.

Computed with pandas from `crm_sync_log` (with integrations, organisations and skipped_records): the
grouping, quantiles and top-N counts are a few lines of pandas and would be a page of SQL per dialect.
The pandas part is `health_tables`, imported inside the asset's body: every sync's run worker imports this
module with the code location, and pandas would be a third of that import for a report that runs daily.
"""

from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from nurturehub_pipelines import settings
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.store.tables import utcnow


class HealthReportConfig(Config):
    window_hours: int = 24


@asset(
    name="sync_health_report",
    group_name="sync_health",
    kinds={"pandas"},
    description="Daily: per CRM and per organisation, syncs, failure rate, p50/p95 sync duration, records "
    "written, and the top skip and error reasons, from crm_sync_log.",
)
def sync_health_report(
    context: AssetExecutionContext, config: HealthReportConfig, app_db: AppDatabase
) -> MaterializeResult:
    from nurturehub_pipelines.assets.health_tables import load, report  # pandas: only when the report runs

    since = utcnow() - timedelta(hours=config.window_hours)
    with app_db.engine().connect() as conn:
        syncs, skipped = load(conn, since)
    text, _, _ = report(syncs, skipped, since)
    context.log.info("%d syncs in the report", len(syncs))
    failures = int(syncs["failed"].sum())
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(text),
            "syncs": len(syncs),
            "failed_syncs": failures,
            "failure_rate": round(failures / len(syncs), 4) if len(syncs) else 0.0,
            "window_hours": config.window_hours,
        }
    )


sync_health_report_job = define_asset_job("sync_health_report_job", selection=[sync_health_report])

sync_health_report_schedule = ScheduleDefinition(
    name="sync_health_report_schedule",
    job=sync_health_report_job,
    cron_schedule="0 7 * * *",
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="The sync health report of the last 24 hours, every morning at 07:00 UK time.",
)
