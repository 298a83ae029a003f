"""The Dagster code location, assembled per area so each area's additions stay one line here.

The sync jobs bind their own CRM's resource to `crm_api` (and the app database, so a job run on its own
works); the Definitions-level resources serve the schedules, sensors, alert delivery and the report.
"""

from dagster import AssetsDefinition, AssetSpec, Definitions, JobDefinition, ScheduleDefinition, SensorDefinition

from nurturehub_pipelines.alerts import alert_delivery_from_env, deliver_alerts
from nurturehub_pipelines.assets import CRM_RECORD_ASSETS, sync_health_report, sync_health_report_schedule
from nurturehub_pipelines.jobs import SYNC_JOBS
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.retention import prune_sync_log, prune_sync_log_job
from nurturehub_pipelines.schedules import sync_schedules
from sensors.alerts import alert_sensor
from sensors.integration_partitions import integration_partitions_sensor
from sensors.run_outcomes import run_outcome_sensor
from sensors.sync_requests import sync_request_sensor

assets: list[AssetSpec | AssetsDefinition] = [*CRM_RECORD_ASSETS, sync_health_report]
jobs: list[JobDefinition] = [*SYNC_JOBS, deliver_alerts, prune_sync_log_job]  # the report's job comes with its schedule
schedules: list[ScheduleDefinition] = [*sync_schedules, sync_health_report_schedule, prune_sync_log]
sensors: list[SensorDefinition] = [run_outcome_sensor, alert_sensor, sync_request_sensor, integration_partitions_sensor]
resources: dict[str, object] = {"app_db": app_database_from_env(), "alert_delivery": alert_delivery_from_env()}

defs = Definitions(assets=assets, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources)
