"""A seventh CRM is one module and one registry line: here the module is this file's `AcmeResource`."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from dagster import DagsterInstance
from sqlalchemy import select

from crm_resources import openapi, registry
from crm_resources.core import CrmResource, CrmSpec, CursorPaginator, Endpoint, HeaderAuth
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import crm_sync_log

# "Acme" speaks the Open API wire shape, so the sandbox can stand in for it; its declaration is its own.
ACME = CrmSpec(
    crm="acme",
    crm_name="Acme",
    contacts=(Endpoint("/contacts"),),
    leads=(Endpoint("/leads"),),
    paginator=CursorPaginator("cursor", "meta.next_cursor", "limit", 50, has_more="meta.has_more"),
    records="data",
    map_contact=openapi.map_contact,
    map_lead=openapi.map_lead,
    rate=None,
    since_param="updated_since",
)


class AcmeResource(CrmResource):
    base_url: str = "https://api.acme.example"
    spec = ACME
    credential_sets = (("api_key",),)

    def connection(
        self, settings: Mapping[str, str], credentials: Mapping[str, str]
    ) -> tuple[str, httpx.Auth, Mapping[str, str], Mapping[str, str]]:
        return self.base_url, HeaderAuth.bearer(credentials["api_key"]), {}, {}


@pytest.fixture
def acme_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry line: `CRM_RESOURCES = (..., AcmeResource)`."""
    monkeypatch.setitem(registry.REGISTRY, "acme", AcmeResource)
    monkeypatch.setattr(registry, "CRMS", (*registry.CRMS, "acme"))


def test_a_seventh_crm_gets_a_job_settings_checks_and_env_config(
    acme_registered: None, db_url: str, sandbox: SandboxServer, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_BASE_URL", sandbox.base_urls()["OPENAPI_BASE_URL"])
    assert registry.crm_name("acme") == "Acme"
    with pytest.raises(registry.IntegrationConfigError, match="api_key"):
        registry.check_integration("acme", {}, {"token": "x"})
    control.dataset("openapi", contacts=120, leads=60)

    credentials = {"api_key": SANDBOX_CREDENTIALS["openapi"]["token"]}
    registry.check_integration("acme", {}, credentials)
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], "acme", "Acme", {}, credentials)
    job = build_sync_job("acme")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config=run_config(integration_id, full=True),
            tags=run_tags(integration_id, org["org_id"], "acme", "manual"),
            instance=instance,
        )
    assert job.name == "sync_acme" and result.success
    with db.engine().connect() as conn:
        finished = conn.execute(
            select(crm_sync_log.c.outcome, crm_sync_log.c.records_affected).where(
                crm_sync_log.c.run_id == result.run_id, crm_sync_log.c.event_type == "sync_finished"
            )
        ).one()
    assert tuple(finished) == ("success", 180)
