"""The Dagster code location: six sync jobs, the schedule, the sensors and one resource per CRM (bound to its job)."""

from dagster import Definitions

from nurturehub_pipelines.alerts import alert_delivery_from_env, deliver_alerts
from nurturehub_pipelines.jobs import SYNC_JOBS
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.schedules import sync_schedules
from sensors.alerts import alert_sensor
from sensors.run_outcomes import run_outcome_sensor
from sensors.sync_requests import sync_request_sensor

defs = Definitions(
    jobs=[*SYNC_JOBS, deliver_alerts],
    schedules=sync_schedules,
    sensors=[run_outcome_sensor, alert_sensor, sync_request_sensor],
    resources={"app_db": app_database_from_env(), "alert_delivery": alert_delivery_from_env()},
)
