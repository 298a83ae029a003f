"""An agency whose Reapit integration syncs for real on a Dagster instance, and the daemon's part played by
hand: `tick` runs each failure sensor once, as the daemon would, and runs the deliveries they request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, JobDefinition, RunRequest, build_sensor_context
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from sqlalchemy import select, update

from crm_resources.registry import resource_from_env
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from nurturehub_pipelines.alerts import alert_delivery_from_env, deliver_alerts
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import alert_outbox, crm_sync_log, integrations
from nurturehub_pipelines.sync.ops import CRM_KEY
from sensors.alerts import alert_sensor
from sensors.run_outcomes import run_outcome_sensor

NOT_INSTALLED = {"customer_id": "NOT-INSTALLED"}  # Reapit answers 403: the app is not installed for it
INSTALLED = {"customer_id": SANDBOX_CREDENTIALS["reapit"]["customer_id"]}
FAST = {"timeout_seconds": 2.0, "max_attempts": 2, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def sensor_resources() -> dict[str, Any]:
    """The resources the code location binds, from this test's environment."""
    return {"app_db": app_database_from_env(), "alert_delivery": alert_delivery_from_env()}


@dataclass
class Agency:
    """One organisation, a Dagster instance, and the sensors' cursors between ticks."""

    org_id: int
    instance: DagsterInstance
    control: SandboxControl
    outcome_cursor: str | None = None
    alert_cursor: str | None = None
    deliveries: list[str] = field(default_factory=list)  # run ids of the deliver_alerts runs

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
            resources={CRM_KEY: resource_from_env("reapit", **FAST), **sensor_resources()},
            instance=self.instance,
            raise_on_error=False,
        )
        return result.success

    def tick(self) -> list[RunRequest]:
        """One tick of each sensor; then the delivery runs the alert sensor asked for, as the daemon would."""
        outcome = run_outcome_sensor.evaluate_tick(
            build_sensor_context(instance=self.instance, cursor=self.outcome_cursor, resources=sensor_resources())
        )
        self.outcome_cursor = outcome.cursor
        requests = self.alert_tick()
        for request in requests:
            self.deliver(request)
        return requests

    def alert_tick(self) -> list[RunRequest]:
        """One tick of the alert sensor alone: its run requests, not yet run."""
        result = alert_sensor.evaluate_tick(
            build_sensor_context(instance=self.instance, cursor=self.alert_cursor, resources=sensor_resources())
        )
        self.alert_cursor = result.cursor
        return list(result.run_requests or [])

    def deliver(self, request: RunRequest) -> None:
        """The requested deliver_alerts run, executed on this instance with the request's tags."""
        assert request.job_name == deliver_alerts.name
        result = deliver_alerts.execute_in_process(
            instance=self.instance, tags=request.tags, resources=sensor_resources()
        )
        assert result.success
        self.deliveries.append(result.run_id)


def queued_run(instance: DagsterInstance, job: JobDefinition, tags: dict[str, str]) -> DagsterRun:
    """A run of `job` waiting in the run queue, as the daemon leaves it (a queued run names its code location)."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="nurturehub_pipelines.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
    return instance.create_run_for_job(job, tags=tags, status=DagsterRunStatus.QUEUED, remote_job_origin=origin)


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
        return [(row.integration_id, row.kind) for row in conn.execute(select(alert_outbox))]
