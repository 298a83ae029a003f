"""The failure sensors against real runs: the real `sync_reapit` job on a real Dagster instance, the CRM
sandbox over loopback, and alerts delivered to a real SMTP server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from sqlalchemy import select, update

from crm_resources.registry import resource_from_env
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.instance import ensure_embedded_instance
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.run_contract import job_name, run_config, run_tags
from nurturehub_pipelines.smtp_capture import SmtpCapture
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import alert_outbox, crm_sync_log, integrations
from nurturehub_pipelines.sync.ops import CRM_KEY
from sensors import failures
from sensors.failures import alert_sensor, run_outcome_sensor

REPO = Path(__file__).resolve().parents[2]
OWNER = "owner@harbour.example"
NOT_INSTALLED = {"customer_id": "NOT-INSTALLED"}  # Reapit answers 403: the app is not installed for it
INSTALLED = {"customer_id": SANDBOX_CREDENTIALS["reapit"]["customer_id"]}
FAST = {"timeout_seconds": 2.0, "max_attempts": 2, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        monkeypatch.setenv("NURTUREHUB_SMTP_URL", server.url)
        yield server


@dataclass
class Agency:
    """One organisation (owner, admin, member), a Dagster instance, and the sensors' state between ticks."""

    org_id: int
    instance: DagsterInstance
    control: SandboxControl
    outcome_cursor: str | None = None

    def integration(self, name: str = "Reapit") -> int:
        with db.engine().begin() as conn:
            return accounts.add_integration(conn, self.org_id, "reapit", name, NOT_INSTALLED, {})

    def reconnect(self, integration_id: int) -> None:
        with db.engine().begin() as conn:
            conn.execute(update(integrations).where(integrations.c.id == integration_id).values(settings=INSTALLED))

    def sync(self, integration_id: int, trigger: str = "schedule") -> bool:
        """One real run of `sync_reapit`; True when it succeeded."""
        result = build_sync_job("reapit").execute_in_process(
            run_config=run_config(integration_id, full=False),
            tags=run_tags(integration_id, self.org_id, "reapit", trigger),
            resources={CRM_KEY: resource_from_env("reapit", **FAST)},
            instance=self.instance,
            raise_on_error=False,
        )
        return result.success

    def tick(self) -> None:
        """One tick of each sensor, as the daemon would run them."""
        outcome = run_outcome_sensor.evaluate_tick(
            build_sensor_context(instance=self.instance, cursor=self.outcome_cursor)
        )
        self.outcome_cursor = outcome.cursor
        alert_sensor.evaluate_tick(build_sensor_context(instance=self.instance))


@pytest.fixture
def agency(db_url: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agency]:
    for key, value in sandbox.base_urls().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REAPIT_CLIENT_ID", SANDBOX_CREDENTIALS["reapit"]["client_id"])
    monkeypatch.setenv("REAPIT_CLIENT_SECRET", SANDBOX_CREDENTIALS["reapit"]["client_secret"])
    monkeypatch.setenv("NURTUREHUB_BASE_URL", "https://app.nurturehub.example")
    monkeypatch.delenv("NURTUREHUB_FAILURE_THRESHOLD", raising=False)
    control = SandboxControl(sandbox.root_url)
    control.reset()
    control.dataset("reapit", contacts=3, leads=2)
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", OWNER)
        accounts.add_user(conn, org["org_id"], "admin@harbour.example", "admin")
        accounts.add_user(conn, org["org_id"], "member@harbour.example", "member")
    # In-memory run and event storage: a run costs 0.2 s instead of 1.5 s on SQLite. The killed-run test,
    # whose run a code server process executes, uses the embedded SQLite instance.
    with DagsterInstance.ephemeral() as instance:
        yield Agency(org["org_id"], instance, control)


@pytest.fixture
def embedded_instance(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """The instance `nurturehub` commands use: SQLite under this test's NURTUREHUB_HOME, our dagster.yaml."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ensure_embedded_instance()
    with DagsterInstance.get() as instance:
        yield instance


def finished_rows(integration_id: int) -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        rows = conn.execute(
            select(crm_sync_log)
            .where(crm_sync_log.c.integration_id == integration_id, crm_sync_log.c.event_type == "sync_finished")
            .order_by(crm_sync_log.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def outbox_kinds() -> list[tuple[int, str]]:
    with db.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(select(alert_outbox.c.integration_id, alert_outbox.c.kind))]


def test_three_failed_runs_email_the_owner_once_then_a_fourth_sends_nothing_and_a_success_one_recovery(
    agency: Agency, smtp: SmtpCapture
) -> None:
    integration = agency.integration()
    for _ in range(2):
        assert not agency.sync(integration)
        agency.tick()
    assert smtp.messages == []

    assert not agency.sync(integration)
    agency.tick()
    [alert] = smtp.wait_for(1)
    assert alert.rcpt_tos == (OWNER,)
    assert "Reapit" in alert.subject and "3 times in a row" in alert.subject
    assert finished_rows(integration)[-1]["message"] in alert.body  # the failing step's message, in words
    assert "https://app.nurturehub.example/dashboard/settings/integrations" in alert.body

    assert not agency.sync(integration)
    agency.tick()
    agency.tick()
    assert len(smtp.messages) == 1

    agency.reconnect(integration)
    assert agency.sync(integration)
    agency.tick()
    mails = smtp.wait_for(2)
    assert len(mails) == 2 and "syncing again" in mails[1].subject and mails[1].rcpt_tos == (OWNER,)
    assert [row["outcome"] for row in finished_rows(integration)] == ["error"] * 4 + ["success"]


def test_two_failed_runs_then_a_success_send_nothing(agency: Agency, smtp: SmtpCapture) -> None:
    integration = agency.integration()
    for _ in range(2):
        assert not agency.sync(integration, trigger="sync_now")
        agency.tick()
    agency.reconnect(integration)
    assert agency.sync(integration, trigger="retry")
    agency.tick()
    assert smtp.messages == [] and outbox_kinds() == []


def test_two_integrations_crossing_the_threshold_in_one_tick_get_one_email_each(
    agency: Agency, smtp: SmtpCapture
) -> None:
    first, second = agency.integration("Head office"), agency.integration("Lettings")
    for _ in range(3):
        assert not agency.sync(first)
        assert not agency.sync(second)
    agency.tick()
    mails = smtp.wait_for(2)
    assert sorted(m.subject for m in mails) == [
        "NurtureHub: Reapit (Head office) has failed to sync 3 times in a row",
        "NurtureHub: Reapit (Lettings) has failed to sync 3 times in a row",
    ]


def test_evaluating_again_or_restarting_the_daemon_sends_no_duplicate(agency: Agency, smtp: SmtpCapture) -> None:
    integration = agency.integration()
    for _ in range(3):
        agency.sync(integration)
    agency.tick()
    agency.tick()
    # A restarted daemon: no sensor cursor, a new process (no engine, no memory) on the same databases.
    agency.outcome_cursor = None
    db.engine().dispose()
    db._engine_for.cache_clear()
    agency.tick()
    assert len(smtp.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and outbox_kinds() == [(integration, "failure")]
    assert len(finished_rows(integration)) == 3  # the sensor wrote nothing for runs that wrote their own


def test_smtp_refusing_mail_at_the_third_failure_delivers_it_later_exactly_once(
    agency: Agency, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nurturehub_pipelines.alerts.RETRY_BASE_SECONDS", 0)  # retry at the next tick
    integration = agency.integration()
    for _ in range(2):
        agency.sync(integration)
    smtp.refuse_with = "421 4.3.2 Service not available, closing transmission channel"
    agency.sync(integration)
    agency.tick()
    agency.tick()
    assert smtp.messages == []
    smtp.refuse_with = None
    agency.tick()
    agency.tick()
    assert len(smtp.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(smtp.messages) == 1


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
    assert row["message"] == failures.CANCELLED_MESSAGE


def test_a_sync_process_killed_mid_run_counts_as_a_failure_with_its_row(
    agency: Agency, embedded_instance: DagsterInstance, smtp: SmtpCapture
) -> None:
    """Launched as the daemon launches it: a code server starts the run worker; we SIGKILL the worker."""
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
            assert time.monotonic() < deadline, "the code server did not mark the killed run failed"
            time.sleep(0.1)
    agency.control.clear_faults("reapit")

    agency.tick()
    rows = finished_rows(integration)
    assert [row["outcome"] for row in rows] == ["error"] * 3
    assert rows[-1]["run_id"] == run.run_id and rows[-1]["message"] == failures.DIED_MESSAGE
    [alert] = smtp.wait_for(1)  # the killed run was the third failure in a row
    assert "3 times in a row" in alert.subject and failures.DIED_MESSAGE in alert.body
    agency.tick()
    assert len(finished_rows(integration)) == 3


def wait_for_worker_mid_run(instance: DagsterInstance, run_id: str, integration_id: int) -> int:
    """The run worker's pid, once it has written its auth_refresh row (it then hangs reading contacts)."""
    deadline = time.monotonic() + 60
    pid = None
    while time.monotonic() < deadline:
        if pid is None:
            for entry in instance.all_logs(run_id):
                if entry.message and entry.message.startswith("Started process for run (pid: "):
                    pid = int(entry.message.split("pid: ")[1].rstrip(")."))
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
