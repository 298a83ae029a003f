"""Fixtures of the failure sensors' tests: the CRM sandbox over loopback, a real SMTP server, an agency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterInstance

from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.instance import ensure_embedded_instance
from tests.support.agency import Agency
from tests.support.alert_fixtures import org, smtp
from tests.support.alert_world import create_org

__all__ = ["agency", "embedded_instance", "org", "sandbox", "smtp"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


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
    org = create_org()
    # In-memory run and event storage: a run costs 0.2 s instead of 1.5 s on SQLite. The killed-run test,
    # whose run a code server process executes, uses the embedded SQLite instance.
    with DagsterInstance.ephemeral() as instance:
        yield Agency(org.org_id, instance, control)


@pytest.fixture
def embedded_instance(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """The instance `nurturehub` commands use: SQLite under this test's NURTUREHUB_HOME, our dagster.yaml."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ensure_embedded_instance()
    with DagsterInstance.get() as instance:
        yield instance
