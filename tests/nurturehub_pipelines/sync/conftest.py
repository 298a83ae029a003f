"""A sandbox over loopback, an app database, and one integration per CRM to sync through the real job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dagster import DagsterInstance
from sqlalchemy import func, select

from crm_resources.registry import CRMS, REGISTRY, resource_from_env
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import contacts, crm_sync_log, leads
from nurturehub_pipelines.sync.ops import CRM_KEY

# Engine tuning for tests: real retries and backoff, scaled down so a fault costs milliseconds.
FAST = {
    "timeout_seconds": 1.0,
    "max_attempts": 3,
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "default_retry_after_seconds": 0.1,
}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def control(sandbox: SandboxServer) -> SandboxControl:
    ctl = SandboxControl(sandbox.root_url)
    ctl.reset()
    return ctl


@pytest.fixture
def crm_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The env a deployment pointed at the sandbox would have (URLs and NurtureHub's app credentials)."""
    env = {k: v for k, v in sandbox.base_urls().items() if k != "OPENAPI_BASE_URL"}
    for crm in ("reapit", "alto"):
        env[f"{crm.upper()}_CLIENT_ID"] = SANDBOX_CREDENTIALS[crm]["client_id"]
        env[f"{crm.upper()}_CLIENT_SECRET"] = SANDBOX_CREDENTIALS[crm]["client_secret"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def integration_values(crm: str, sandbox: SandboxServer) -> tuple[dict[str, str], dict[str, str]]:
    """The sandbox's settings and credentials for a CRM, split as `integration add` takes them."""
    cls = REGISTRY[crm]
    given = {**SANDBOX_CREDENTIALS[crm], "base_url": sandbox.base_urls()["OPENAPI_BASE_URL"]}
    settings = {k: given[k] for k in cls.settings_keys}
    credentials = {k: given[k] for k in cls.credential_sets[0]}
    return settings, credentials


@dataclass
class Harness:
    crm: str
    db_url: str
    org_id: int
    integration_id: int
    control: SandboxControl
    instance: DagsterInstance

    def sync(self, full: bool = False, trigger: str = "manual", **tuning: Any) -> dict[str, dict[str, Any]]:
        """Run the real `sync_<crm>` job in process; return this run's log rows by event type."""
        resources = {CRM_KEY: resource_from_env(self.crm, **{**FAST, **tuning})}
        result = build_sync_job(self.crm).execute_in_process(
            run_config=run_config(self.integration_id, full),
            tags=run_tags(self.integration_id, self.org_id, self.crm, trigger),
            resources=resources,
            instance=self.instance,
            raise_on_error=False,
        )
        with db.engine().connect() as conn:
            rows = conn.execute(select(crm_sync_log).where(crm_sync_log.c.run_id == result.run_id)).mappings()
            events = {row["event_type"]: dict(row) for row in rows}
        events["_run"] = {"success": result.success, "run_id": result.run_id}
        return events

    def count(self, stream: str, *, deleted: bool | None = None) -> int:
        table = contacts if stream == "contacts" else leads
        query = select(func.count()).select_from(table).where(table.c.integration_id == self.integration_id)
        if deleted is not None:
            query = query.where(table.c.deleted.is_(deleted))
        with db.engine().connect() as conn:
            return conn.execute(query).scalar_one()

    def distinct_ids(self, stream: str) -> int:
        table = contacts if stream == "contacts" else leads
        with db.engine().connect() as conn:
            return conn.execute(
                select(func.count(func.distinct(table.c.external_id))).where(
                    table.c.integration_id == self.integration_id
                )
            ).scalar_one()


@pytest.fixture(params=CRMS)
def crm(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def harness(
    crm: str, db_url: str, control: SandboxControl, crm_env: dict[str, str], sandbox: SandboxServer
) -> Iterator[Harness]:
    settings, credentials = integration_values(crm, sandbox)
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], crm, crm, settings, credentials)
    with DagsterInstance.ephemeral() as instance:
        yield Harness(crm, db_url, org["org_id"], integration_id, control, instance)
