"""Owner notifications: failure streaks read from crm_sync_log, a database outbox, SMTP delivery, in-app rows.

Streaks are counted from `crm_sync_log`, not from Dagster's run events, because the log is the one place
every failed sync ends up: runs that failed cleanly (the engine wrote `sync_finished`/`error`), runs that
died (`run_outcome_sensor` writes the row for them), and rows written outside a run. Run-event sensors
lose or repeat alerts (a tick sees 5 runs, an exception still moves the cursor, two failures in one tick
both see the same history); here the evaluation is a pure function of the log and a watermark.

One job a module:
- `streaks`: the failure streaks of a batch of integrations (on `store.sync_log`'s rules);
- `outbox`: which streaks call for an alert or a recovery, written once (`evaluate`);
- `messages`: what the email and the in-app line say;
- `watermark`: which integrations have new rows since the last evaluation (`evaluate_new_rows`);
- `smtp`, `delivery`: sending the outbox (`deliver`); `job`: the `deliver_alerts` job that runs it;
- `resource`: the `alert_delivery` resource (the alert settings, from the environment).
The sensor that ties them together is `sensors.alerts.alert_sensor`.
"""

from nurturehub_pipelines.alerts.delivery import (
    LEASE,
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
    Delivery,
    deliver,
    has_due,
    retry_delay,
)
from nurturehub_pipelines.alerts.job import deliver_alerts, delivery_requests
from nurturehub_pipelines.alerts.messages import Recipient, failure_message, page_url, recovery_message
from nurturehub_pipelines.alerts.outbox import Evaluation, evaluate, failure_key, recipients, recovered_key
from nurturehub_pipelines.alerts.resource import AlertDelivery, alert_delivery_from_env
from nurturehub_pipelines.alerts.smtp import SmtpTarget, parse_smtp_url
from nurturehub_pipelines.alerts.streaks import Streak, streaks
from nurturehub_pipelines.alerts.watermark import (
    CHUNK,
    FIRST_RUN_WINDOW,
    WATERMARK_LAG,
    Watermark,
    evaluate_new_rows,
)
from nurturehub_pipelines.settings import PAGE_PATH
from nurturehub_pipelines.store.sync_log import COMPLETED
from nurturehub_pipelines.store.tables import utcnow

__all__ = [
    "CHUNK",
    "COMPLETED",
    "FIRST_RUN_WINDOW",
    "LEASE",
    "PAGE_PATH",
    "RETRY_BASE_SECONDS",
    "RETRY_CAP_SECONDS",
    "WATERMARK_LAG",
    "AlertDelivery",
    "Delivery",
    "Evaluation",
    "Recipient",
    "SmtpTarget",
    "Streak",
    "Watermark",
    "alert_delivery_from_env",
    "deliver",
    "deliver_alerts",
    "delivery_requests",
    "evaluate",
    "evaluate_new_rows",
    "failure_key",
    "failure_message",
    "has_due",
    "page_url",
    "parse_smtp_url",
    "recipients",
    "recovered_key",
    "recovery_message",
    "retry_delay",
    "streaks",
    "utcnow",
]
