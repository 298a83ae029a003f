"""`nurturehub log prune` as a user runs it, and the daily `prune_sync_log` schedule and its job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, DefaultScheduleStatus, build_schedule_context
from sqlalchemy import func, insert, select

from nurturehub_pipelines.definitions import defs
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.retention import JOB_NAME, OP_NAME, SCHEDULE_NAME, prune_sync_log, prune_sync_log_job
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import crm_sync_log, skipped_records, utcnow
from tests.support.cli import nurturehub

REPO = Path(__file__).resolve().parents[2]


def history(days_old: int, rows: int = 150) -> int:
    """An integration with `rows` contact_import rows, all `days_old` days old (minutes apart)."""
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        iid = accounts.add_integration(conn, org["org_id"], "reapit", "Reapit", {"customer_id": "HBR"}, {})
        at = utcnow() - timedelta(days=days_old)
        conn.execute(insert(crm_sync_log), [
            {"integration_id": iid, "trigger": "schedule", "event_type": "contact_import", "outcome": "success",
             "message": f"row {n}", "occurred_at": at + timedelta(minutes=n)} for n in range(rows)
        ])  # fmt: skip
        conn.execute(
            insert(skipped_records),
            {"integration_id": iid, "stream": "contacts", "reason": "no name", "occurred_at": at},
        )
    return iid


def log_rows() -> int:
    with db.engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(crm_sync_log)).scalar_one()


def test_log_prune_prints_what_it_deleted_per_table(db_url: str) -> None:
    history(days_old=120)
    done = nurturehub("log", "prune")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "deleted": {"crm_sync_log": 50, "skipped_records": 1, "alert_outbox": 0, "sync_requests": 0, "web_sessions": 0}
    }
    assert log_rows() == 100


def test_log_prune_days_and_the_setting_choose_the_window(db_url: str) -> None:
    history(days_old=40)
    assert json.loads(nurturehub("log", "prune").stdout)["deleted"]["crm_sync_log"] == 0  # 90 by default
    kept = nurturehub("log", "prune", env={"NURTUREHUB_LOG_RETENTION_DAYS": "60"})
    assert json.loads(kept.stdout)["deleted"]["crm_sync_log"] == 0
    done = nurturehub("log", "prune", "--days", "30", env={"NURTUREHUB_LOG_RETENTION_DAYS": "60"})
    assert json.loads(done.stdout)["deleted"]["crm_sync_log"] == 50


@pytest.mark.parametrize("days", ["0", "-1", "abc", "1.5", ""])
def test_log_prune_refuses_a_window_that_is_not_a_positive_whole_number_and_writes_nothing(
    db_url: str, days: str
) -> None:
    history(days_old=120)
    done = nurturehub("log", "prune", "--days", days)
    assert done.returncode != 0 and done.stdout == ""
    assert "--days must be a whole number of days from 1" in done.stderr
    assert log_rows() == 150


def test_a_bad_retention_setting_is_refused_by_name(db_url: str) -> None:
    history(days_old=120)
    done = nurturehub("log", "prune", env={"NURTUREHUB_LOG_RETENTION_DAYS": "ninety"})
    assert done.returncode != 0 and "NURTUREHUB_LOG_RETENTION_DAYS must be a whole number" in done.stderr
    assert log_rows() == 150


def test_the_schedule_is_in_the_code_location_daily_in_london_and_running_by_default() -> None:
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def(SCHEDULE_NAME)
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == JOB_NAME and repository.has_job(JOB_NAME)
    assert schedule.cron_schedule == "30 3 * * *" and schedule.execution_timezone == "Europe/London"


def test_a_tick_asks_for_one_run_with_the_configured_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_LOG_RETENTION_DAYS", "30")
    tick = datetime(2026, 6, 3, 2, 30, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        data = prune_sync_log.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=tick))
    (request,) = data.run_requests or []
    assert request.run_config == {"ops": {OP_NAME: {"config": {"retention_days": 30}}}}
    assert request.run_key == "prune-20260603"


def test_the_job_prunes_with_the_app_database_and_reports_the_counts(db_url: str) -> None:
    history(days_old=120)
    result = prune_sync_log_job.execute_in_process(resources={"app_db": app_database_from_env()})
    assert result.success
    assert result.output_for_node(OP_NAME)["crm_sync_log"] == 50
    (materialization,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["crm_sync_log"].value == 50 and metadata["retention_days"].value == 90
    assert metadata["skipped_records"].value == 1
    assert log_rows() == 100


def test_the_job_with_an_explicit_window(db_url: str) -> None:
    history(days_old=40)
    config = {"ops": {OP_NAME: {"config": {"retention_days": 30}}}}
    result = prune_sync_log_job.execute_in_process(run_config=config, resources={"app_db": app_database_from_env()})
    assert result.output_for_node(OP_NAME)["crm_sync_log"] == 50
    refused = prune_sync_log_job.execute_in_process(
        run_config={"ops": {OP_NAME: {"config": {"retention_days": 0}}}},
        resources={"app_db": app_database_from_env()},
        raise_on_error=False,
    )
    assert not refused.success
