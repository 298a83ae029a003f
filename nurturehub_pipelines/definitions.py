"""The Dagster code location: six sync jobs, the schedule, the sensors and one resource per CRM (bound to its job)."""

from dagster import Definitions

from nurturehub_pipelines.jobs import SYNC_JOBS
from nurturehub_pipelines.schedules import sync_schedules
from sensors.failures import alert_sensor, run_outcome_sensor
from sensors.sync_requests import sync_request_sensor

defs = Definitions(
    jobs=SYNC_JOBS,
    schedules=sync_schedules,
    sensors=[run_outcome_sensor, alert_sensor, sync_request_sensor],
)
