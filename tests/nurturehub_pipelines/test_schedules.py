"""The scheduled sync: every 4 hours in Europe/London, one incremental run per enabled integration."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, DefaultScheduleStatus, build_schedule_context
from sqlalchemy import insert

from crm_resources.registry import CRMS
from nurturehub_pipelines import run_contract
from nurturehub_pipelines.definitions import defs
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.schedules import build_sync_schedule, schedule_name, sync_schedules
from nurturehub_pipelines.store import accounts, db, sync_requests
from nurturehub_pipelines.store.tables import integrations, organisations, utcnow

TICK = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def requests_at(tick: datetime = TICK) -> list:  # type: ignore[type-arg]
    """Every run request of every sync schedule at one tick."""
    found = []
    with DagsterInstance.ephemeral() as instance:
        for schedule in sync_schedules:
            context = build_schedule_context(
                instance=instance, scheduled_execution_time=tick, resources={"app_db": app_database_from_env()}
            )
            data = schedule.evaluate_tick(context)
            for request in data.run_requests or []:
                assert request.job_name == schedule.job_name  # the daemon launches the schedule's own job
            found += data.run_requests or []
    return found


def test_one_schedule_per_crm_every_4_hours_in_london_running_by_default() -> None:
    repository = defs.get_repository_def()
    for crm in CRMS:
        schedule = repository.get_schedule_def(schedule_name(crm))
        assert schedule.job_name == run_contract.job_name(crm)
        assert schedule.cron_schedule == "0 */4 * * *"
        assert schedule.execution_timezone == "Europe/London"
        assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_the_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", "*/15 * * * *")
    assert build_sync_schedule(CRMS[0]).cron_schedule == "*/15 * * * *"


def test_a_tick_requests_one_incremental_run_per_enabled_integration_with_its_tags(db_url: str) -> None:
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")["org_id"]
        other = accounts.create_org(conn, "Quay Estates", "owner@quay.example")["org_id"]
        ids = {(org, crm): accounts.add_integration(conn, org, crm, crm, {}, {}) for crm in CRMS} | {
            (other, CRMS[0]): accounts.add_integration(conn, other, CRMS[0], "Quay", {}, {})
        }
        disabled = accounts.add_integration(conn, org, CRMS[0], "Old account", {}, {})
        accounts.set_enabled(conn, disabled, False)

    requests = requests_at()

    assert len(requests) == len(ids)
    assert disabled not in {int(r.tags[run_contract.TAG_INTEGRATION]) for r in requests}
    by_integration = {int(r.tags[run_contract.TAG_INTEGRATION]): r for r in requests}
    for (org_id, crm), integration_id in ids.items():
        request = by_integration[integration_id]
        assert request.job_name == run_contract.job_name(crm)
        assert request.run_config == run_contract.run_config(integration_id, full=False)
        assert {k: v for k, v in request.tags.items() if k.startswith("nurturehub/")} == {
            **run_contract.run_tags(integration_id, org_id, crm, "schedule"),
            run_contract.TAG_REQUEST: sync_requests.scheduled_request_id(request.run_key),
        }
    assert len({r.run_key for r in requests}) == len(requests)
    with db.engine().begin() as conn:  # their runs finished
        for request in requests:
            sync_requests.close(conn, request.tags[run_contract.TAG_REQUEST], "finished", utcnow())
    later = requests_at(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert len(later) == len(ids)
    assert not {r.run_key for r in requests} & {r.run_key for r in later}  # one key per integration per tick


def test_a_tick_of_5000_integrations_evaluates_in_seconds(db_url: str) -> None:
    with db.engine().begin() as conn:
        org = conn.execute(insert(organisations).values(name="Big agency").returning(organisations.c.id)).scalar_one()
        conn.execute(
            insert(integrations),
            [{"org_id": org, "crm": CRMS[i % len(CRMS)], "name": f"Branch {i}", "settings": {}} for i in range(5000)],
        )
    started = time.monotonic()
    requests = requests_at()
    elapsed = time.monotonic() - started
    assert len(requests) == 5000
    assert elapsed < 10, f"evaluating the tick took {elapsed:.1f} s; the daemon's timeout is 60 s"
