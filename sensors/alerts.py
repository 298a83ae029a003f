"""`alert_sensor`: decides the owner alerts of failure streaks, and launches their delivery.

Each tick evaluates the log rows above its watermark (`nurturehub_pipelines.alerts.evaluate_new_rows`),
writes what they call for to the outbox (idempotently: an alert's dedupe key is unique), and, when mail is
due, launches a `deliver_alerts` run unless one is already waiting or running. The watermark is the
sensor's Dagster cursor: written outbox rows commit before the cursor moves, so a tick that dies halfway
is simply evaluated again. Ticking on every daemon loop (5 s) and a reserved run slot keep an alert inside
the 60-second promise.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, sensor

from nurturehub_pipelines.alerts import AlertDelivery, Watermark, deliver_alerts, delivery_requests, evaluate_new_rows
from nurturehub_pipelines.resources import AppDatabase
from sensors import EVERY_DAEMON_LOOP


@sensor(
    name="alert_sensor",
    job=deliver_alerts,
    minimum_interval_seconds=EVERY_DAEMON_LOOP,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes the owner's alert on a failure streak's threshold and on recovery to the outbox, "
    "and launches deliver_alerts to email them.",
)
def alert_sensor(context: SensorEvaluationContext, app_db: AppDatabase, alert_delivery: AlertDelivery) -> SensorResult:
    engine, settings = app_db.engine(), alert_delivery.alert_settings()
    evaluation, watermark = evaluate_new_rows(engine, settings, Watermark.loads(context.cursor))
    run_requests = delivery_requests(context.instance, engine, settings)
    wrote = evaluation.alerts or evaluation.recoveries
    if wrote:
        context.log.info(
            f"Wrote {evaluation.alerts} alerts and {evaluation.recoveries} recoveries to the outbox "
            f"({evaluation.integrations} integrations evaluated)"
        )
    if run_requests:
        context.log.info("Alerts are due: launching deliver_alerts")
    if wrote or run_requests:
        return SensorResult(run_requests=run_requests, cursor=watermark.dumps())
    return SensorResult(
        cursor=watermark.dumps(),
        skip_reason=f"{evaluation.integrations} integrations evaluated; no new alert, no delivery to launch",
    )
