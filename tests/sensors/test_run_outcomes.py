"""`run_outcome_sensor` against real runs: a cancelled run and a run worker killed mid-sync each get their
`sync_finished`/`error` row, and the killed one counts towards the owner's alert like any failure."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from sqlalchemy import select, update

from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.run_contract import job_name, run_config, run_tags
from nurturehub_pipelines.run_launcher import TAG_PID
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log, integrations
from nurturehub_pipelines.sync import heartbeat
from sensors import run_outcomes
from tests.support.agency import Agency, finished_rows
from tests.support.smtp_capture import SmtpCapture

REPO = Path(__file__).resolve().parents[2]


def test_a_cancelled_run_gets_its_sync_finished_error_row_once(agency: Agency) -> None:
    integration = agency.integration()
    run = agency.instance.create_run_for_job(
        build_sync_job("reapit"),
        run_config=run_config(integration, full=True),
        tags=run_tags(integration, agency.org_id, "reapit", "sync_now"),
    )
    agency.instance.report_run_canceled(run)
    agency.tick()
    agency.tick()
    [row] = finished_rows(integration)
    assert (row["run_id"], row["outcome"], row["trigger"]) == (run.run_id, "error", "sync_now")
    assert row["message"] == run_outcomes.CANCELLED_MESSAGE


def test_a_dead_run_is_an_internal_failure_not_an_earlier_credential_rejection(agency: Agency) -> None:
    """The quarantine rule reads the latest failure's kind: a killed run must not inherit a past `auth`."""
    integration = agency.integration()
    with db.engine().begin() as conn:
        conn.execute(update(integrations).where(integrations.c.id == integration).values(last_failure_kind="auth"))
    run = agency.instance.create_run_for_job(
        build_sync_job("reapit"),
        run_config=run_config(integration, full=True),
        tags=run_tags(integration, agency.org_id, "reapit", "schedule"),
    )
    agency.instance.report_run_canceled(run)
    agency.tick()
    with db.engine().connect() as conn:
        kind = conn.execute(select(integrations.c.last_failure_kind).where(integrations.c.id == integration)).scalar()
    assert kind == "internal"


def test_a_launchpad_run_without_tags_is_found_by_its_run_config(agency: Agency) -> None:
    """A data engineer's run from the Launchpad: only run config names the integration, no trigger tag."""
    integration = agency.integration()
    run = agency.instance.create_run_for_job(build_sync_job("reapit"), run_config=run_config(integration, full=True))
    agency.instance.report_run_canceled(run)
    agency.tick()
    [row] = finished_rows(integration)
    assert (row["run_id"], row["trigger"]) == (run.run_id, "manual")


def test_a_sync_process_killed_mid_run_counts_as_a_failure_with_its_row(
    agency: Agency, embedded_instance: DagsterInstance, smtp: SmtpCapture
) -> None:
    """Launched as the daemon launches it: the run launcher forks the run worker; we SIGKILL the worker."""
    integration = agency.integration()
    for _ in range(2):
        assert not agency.sync(integration)
    agency.instance = embedded_instance
    agency.reconnect(integration)
    agency.control.fault("reapit", "delay", stream="contacts", seconds=30, times=-1)  # hangs mid-run

    target = ModuleTarget(
        module_name="nurturehub_pipelines.definitions",
        attribute=None,
        working_directory=str(REPO),
        location_name="nurturehub_pipelines",
    )
    with WorkspaceProcessContext(agency.instance, target) as workspace:
        context = workspace.create_request_context()
        location = context.get_code_location("nurturehub_pipelines")
        remote_job = location.get_repository("__repository__").get_full_job(job_name("reapit"))
        run = agency.instance.create_run_for_job(
            build_sync_job("reapit"),
            run_config=run_config(integration, full=False),
            tags=run_tags(integration, agency.org_id, "reapit", "schedule"),
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )
        agency.instance.launch_run(run.run_id, context)
        pid = wait_for_worker_mid_run(agency.instance, run.run_id, integration)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while agency.instance.get_run_by_id(run.run_id).status != DagsterRunStatus.FAILURE:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run launcher did not mark the killed run failed"
            time.sleep(0.1)
    agency.control.clear_faults("reapit")

    agency.tick()
    rows = finished_rows(integration)
    assert [row["outcome"] for row in rows] == ["error"] * 3
    assert rows[-1]["run_id"] == run.run_id and rows[-1]["message"] == run_outcomes.DIED_MESSAGE
    [alert] = smtp.wait_for(1)  # the killed run was the third failure in a row
    assert "3 times in a row" in alert.subject and run_outcomes.DIED_MESSAGE in alert.body
    agency.tick()
    assert len(finished_rows(integration)) == 3


def wait_for_worker_mid_run(instance: DagsterInstance, run_id: str, integration_id: int) -> int:
    """The run worker's pid, once it has written its auth_refresh row (it then hangs reading contacts)."""
    deadline = time.monotonic() + 60
    pid = None
    while time.monotonic() < deadline:
        if pid is None and (run := instance.get_run_by_id(run_id)) and TAG_PID in run.tags:
            pid = int(run.tags[TAG_PID])  # the launcher's (nurturehub_pipelines/run_launcher.py)
        with db.engine().connect() as conn:
            started = conn.execute(
                select(crm_sync_log.c.id).where(
                    crm_sync_log.c.run_id == run_id, crm_sync_log.c.event_type == "auth_refresh"
                )
            ).first()
        if pid is not None and started is not None:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not start syncing")


def started_sync_run(agency: Agency, integration: int, tags: dict[str, str]) -> str:
    """A sync run left STARTED, as a `nurturehub sync` process leaves its run when it is killed."""
    run = agency.instance.create_run_for_job(
        build_sync_job("reapit"),
        run_config=run_config(integration, full=False),
        tags={**run_tags(integration, agency.org_id, "reapit", "manual"), **tags},
    )
    start = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)
    agency.instance.report_dagster_event(start, run_id=run.run_id)  # STARTED, with a start time
    return run.run_id


def test_a_run_whose_process_stopped_beating_is_failed_with_its_row_and_a_beating_one_is_left(
    agency: Agency,
) -> None:
    integration = agency.integration()
    now = datetime.now(UTC)
    silent = started_sync_run(agency, integration, heartbeat.beat_tags(30, now - timedelta(seconds=121)))
    beating = started_sync_run(agency, integration, heartbeat.beat_tags(30, now - timedelta(seconds=100)))
    launched = started_sync_run(agency, integration, {})  # a daemon-launched run: run monitoring's
    agency.tick()
    status = {run_id: agency.instance.get_run_by_id(run_id).status for run_id in (silent, beating, launched)}  # type: ignore[union-attr]
    assert status == {
        silent: DagsterRunStatus.FAILURE,
        beating: DagsterRunStatus.STARTED,
        launched: DagsterRunStatus.STARTED,
    }
    [row] = finished_rows(integration)
    assert (row["run_id"], row["outcome"], row["message"]) == (silent, "error", run_outcomes.DIED_MESSAGE)
    agency.tick()
    assert len(finished_rows(integration)) == 1


def test_the_heartbeat_allows_four_missed_beats_of_the_runs_own_interval() -> None:
    now = datetime.now(UTC)
    assert heartbeat.stopped_since(heartbeat.beat_tags(30, now - timedelta(seconds=119)), now) is None
    assert heartbeat.stopped_since(heartbeat.beat_tags(30, now - timedelta(seconds=125)), now) is not None
    assert heartbeat.stopped_since(heartbeat.beat_tags(2, now - timedelta(seconds=9)), now) is not None
    assert heartbeat.stopped_since({}, now) is None
    assert heartbeat.stopped_since({heartbeat.TAG_HEARTBEAT: "not a time"}, now) is None


def test_the_beating_thread_moves_the_runs_heartbeat(agency: Agency) -> None:
    integration = agency.integration()
    first = datetime.now(UTC) - timedelta(seconds=10)
    run_id = started_sync_run(agency, integration, heartbeat.beat_tags(0.2, first))
    with heartbeat.beating(agency.instance, run_id, 0.2):
        time.sleep(1.5)
    run = agency.instance.get_run_by_id(run_id)
    assert run is not None
    assert datetime.fromisoformat(run.tags[heartbeat.TAG_HEARTBEAT]) > first + timedelta(seconds=5)
