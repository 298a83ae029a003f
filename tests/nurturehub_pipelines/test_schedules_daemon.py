"""The pause rule through a real `dagster-daemon` on an every-minute cron (DESIGN.md, "Running an integration").

Over two ticks a paused integration and a quarantined one (its CRM rejected its credentials after an alert)
get no run, while an enabled one gets a run each tick; once the quarantined one is reconnected with new
credentials, the next tick runs it and its card goes green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRun, RunsFilter
from sqlalchemy import select

from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines import read_model, run_contract
from nurturehub_pipelines.instance import instance_config
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change, quarantine, set_enabled
from nurturehub_pipelines.store.tables import crm_sync_log, utcnow
from tests.support.daemon import dagster_daemon, wait_for

OWNER = "owner@harbour.example"
TICK = 60  # seconds between ticks of "* * * * *"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer() as server, SandboxControl(server.root_url) as control:
        control.reset()
        control.dataset("street", contacts=10, leads=5)
        for key, value in server.base_urls().items():
            monkeypatch.setenv(key, value)
        yield server


def scheduled_runs(instance: DagsterInstance, integration_id: int) -> list[DagsterRun]:
    tags = {run_contract.TAG_INTEGRATION: str(integration_id), run_contract.TAG_TRIGGER: "schedule"}
    return list(instance.get_runs(filters=RunsFilter(tags=tags)))


def finished(integration_id: int) -> list[str]:
    with db.engine().connect() as conn:
        return list(
            conn.execute(
                select(crm_sync_log.c.outcome).where(
                    crm_sync_log.c.integration_id == integration_id,
                    crm_sync_log.c.event_type == "sync_finished",
                    crm_sync_log.c.trigger == "schedule",
                )
            ).scalars()
        )


def test_paused_and_quarantined_integrations_get_no_run_until_reconnected(
    db_url: str, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", "* * * * *")
    valid = SANDBOX_CREDENTIALS["street"]
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", OWNER)["org_id"]
        enabled = accounts.add_integration(conn, org, "street", "Lettings", {}, valid)
        paused = accounts.add_integration(conn, org, "street", "Sales", {}, valid)
        rejected = accounts.add_integration(conn, org, "street", "Old branch", {}, {"api_token": "revoked"})
        set_enabled(conn, paused, False, OWNER)
        quarantine(conn, rejected, "street", utcnow())
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with (
        dagster_daemon(["-w", "workspace.yaml"], env, tmp_path / "daemon.log"),
        DagsterInstance.from_config(str(home)) as instance,
    ):
        # Two ticks: the enabled integration runs on each (the first tick also waits for the daemon to start).
        wait_for("two scheduled runs of the enabled integration", 3 * TICK + 60, lambda: len(finished(enabled)) >= 2)
        assert finished(enabled)[:2] == ["success", "success"]
        assert len({run.tags["dagster/schedule_name"] for run in scheduled_runs(instance, enabled)}) == 1
        assert scheduled_runs(instance, paused) == [] and scheduled_runs(instance, rejected) == []

        with db.engine().begin() as conn:  # the owner reconnects Street with a working token
            apply_change(conn, rejected, IntegrationChange(credentials=valid), OWNER)
        wait_for("a scheduled run after the reconnect", 2 * TICK + 30, lambda: finished(rejected))
        assert finished(rejected) == ["success"]
        assert scheduled_runs(instance, paused) == []
    with db.engine().connect() as conn:
        cards = {card.id: card for card in read_model.cards(conn, org)}
    assert cards[rejected].health == "green" and not cards[rejected].sync_in_progress
    assert finished(paused) == []
