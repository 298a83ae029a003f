"""The failure sensors' old home, until every importer uses `sensors.run_outcomes` and `sensors.alerts`."""

from sensors.alerts import alert_sensor
from sensors.run_outcomes import (
    CANCELLED_MESSAGE,
    DIED_MESSAGE,
    NOT_STARTED_MESSAGE,
    EndedRun,
    ended_sync_run,
    record_ended_runs,
    run_outcome_sensor,
)

__all__ = [
    "CANCELLED_MESSAGE",
    "DIED_MESSAGE",
    "NOT_STARTED_MESSAGE",
    "EndedRun",
    "alert_sensor",
    "ended_sync_run",
    "record_ended_runs",
    "run_outcome_sensor",
]
