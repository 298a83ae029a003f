"""`deliver_alerts`: the Dagster job that sends the outbox, launched by `alert_sensor` when mail is due.

Delivery is long work (one SMTP round trip per alert, waits on a slow server), so it runs as a run of its
own rather than inside a 25-second sensor tick. Its runs carry `nurturehub/service=alert_delivery`, for
which the run queue keeps a slot, and a high `dagster/priority`, so a full queue of syncs never delays an
alert. One run sends until nothing is due or about a minute has passed; mail that falls due later gets a
new run from the sensor's next tick.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    job,
    op,
)
from sqlalchemy import Engine

from nurturehub_pipelines.alerts.delivery import deliver, has_due
from nurturehub_pipelines.alerts.resource import AlertDelivery
from nurturehub_pipelines.alerts.smtp import parse_smtp_url
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.run_contract import SERVICE_ALERT_DELIVERY, TAG_SERVICE
from nurturehub_pipelines.settings import AlertSettings

JOB_NAME = "deliver_alerts"
BUDGET_SECONDS = 60.0  # one run's sending time; the sensor launches the next run if more is due
DELIVERY_TAGS = {
    TAG_SERVICE: SERVICE_ALERT_DELIVERY,
    "dagster/priority": "100",  # ahead of every queued sync run (priority 0)
    "dagster/max_runtime": "300",  # run monitoring ends a hung delivery; its leased rows go out again
}
IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
# A delivery run created longer ago than this is stuck (its own runtime is a minute): another may go beside
# it; the outbox leases keep the two off each other's rows.
STUCK_AFTER = timedelta(minutes=5)
# After a delivery run itself failed (not a refused email: a crash), the next waits this long, so a broken
# deployment makes two failed runs a minute rather than one a tick.
FAILED_RUN_BACKOFF = timedelta(seconds=30)


@op(description="Sends the alert outbox's due rows by SMTP and marks each sent, or backed off with its reason.")
def send_due_alerts(context: OpExecutionContext, app_db: AppDatabase, alert_delivery: AlertDelivery) -> None:
    delivery = deliver(
        app_db.engine(), alert_delivery.alert_settings(), budget_seconds=BUDGET_SECONDS, logger=context.log
    )
    context.log.info(f"{delivery.sent} alerts sent, {delivery.failed} to retry")


@job(name=JOB_NAME, tags=DELIVERY_TAGS, description="Emails the due alerts of the outbox (launched by alert_sensor).")
def deliver_alerts() -> None:
    send_due_alerts()


def _has_run(instance: DagsterInstance, filters: RunsFilter) -> bool:
    return bool(instance.get_run_records(filters=filters, limit=1))


def delivery_in_flight(instance: DagsterInstance, now: datetime | None = None) -> bool:
    """A delivery run is waiting or running, and not stuck: it will pick up whatever is due now."""
    since = (now or datetime.now(UTC)) - STUCK_AFTER
    return _has_run(instance, RunsFilter(job_name=JOB_NAME, statuses=IN_FLIGHT, created_after=since))


def delivery_failed_lately(instance: DagsterInstance, now: datetime | None = None) -> bool:
    since = (now or datetime.now(UTC)) - FAILED_RUN_BACKOFF
    return _has_run(instance, RunsFilter(job_name=JOB_NAME, statuses=[DagsterRunStatus.FAILURE], updated_after=since))


def delivery_requests(instance: DagsterInstance, engine: Engine, settings: AlertSettings) -> list[RunRequest]:
    """One delivery run when mail is due, SMTP is configured and no delivery run will get to it anyway.

    A malformed NURTUREHUB_SMTP_URL fails the tick here (after the outbox is written), loudly, instead of
    failing one delivery run after another.
    """
    if not settings.smtp_url:
        return []
    parse_smtp_url(settings.smtp_url)
    if not has_due(engine) or delivery_in_flight(instance) or delivery_failed_lately(instance):
        return []
    return [RunRequest(job_name=JOB_NAME, tags=DELIVERY_TAGS)]
