"""The schedule's side of "Running an integration": whom it skips, and the requests it records for its runs.

A paused or quarantined integration gets no scheduled run; every scheduled run is recorded as a launched
`schedule` request, so while it waits in Dagster's queue its card says "syncing" and Sync Now answers 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRequest, build_schedule_context
from sqlalchemy import func, select

from nurturehub_pipelines import read_model, run_contract
from nurturehub_pipelines.read_model import integration_ref
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.schedules import build_sync_schedule
from nurturehub_pipelines.store import accounts, db, sync_requests
from nurturehub_pipelines.store.integration_changes import quarantine, set_enabled
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import crm_sync_log, utcnow
from nurturehub_pipelines.web.actions import request_sync
from sensors.sync_requests import RELAUNCH_AFTER, evaluate

TICK = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
JOBS = {"sync_street"}
OWNER = "owner@harbour.example"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def org(db_url: str) -> int:
    with db.engine().begin() as conn:
        return int(accounts.create_org(conn, "Harbour Lettings", OWNER)["org_id"])


def street(org: int, name: str) -> int:
    with db.engine().begin() as conn:
        return accounts.add_integration(conn, org, "street", name, {}, {"api_token": "t"})


def tick(instance: DagsterInstance, at: datetime = TICK) -> list[RunRequest]:
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources={"app_db": app_database_from_env()}
    )
    return build_sync_schedule("street").evaluate_tick(context).run_requests or []


def scheduled(requests: list[RunRequest]) -> list[int]:
    return sorted(int(request.tags[run_contract.TAG_INTEGRATION]) for request in requests)


def card_syncing(org: int, integration_id: int) -> bool:
    with db.engine().connect() as conn:
        return {card.id: card.sync_in_progress for card in read_model.cards(conn, org)}[integration_id]


def sync_now(integration_id: int) -> int:
    with db.engine().connect() as conn:
        ref = integration_ref(conn, integration_id)
    assert ref is not None
    return request_sync(db.engine(), ref, OWNER, "sync_now").status


def test_paused_and_quarantined_integrations_get_no_scheduled_run(org: int, instance: DagsterInstance) -> None:
    enabled, paused, rejected = street(org, "Lettings"), street(org, "Sales"), street(org, "Old branch")
    with db.engine().begin() as conn:
        set_enabled(conn, paused, False, OWNER)
        quarantine(conn, rejected, "street", utcnow())
    assert scheduled(tick(instance)) == [enabled]


def test_a_queued_scheduled_run_is_in_progress_and_refuses_sync_now_until_it_finishes(
    org: int, instance: DagsterInstance
) -> None:
    integration_id = street(org, "Lettings")
    assert not card_syncing(org, integration_id)
    [run_request] = tick(instance)
    request_id = run_request.tags[run_contract.TAG_REQUEST]
    assert run_request.run_config == run_contract.run_config(integration_id, full=False)  # still incremental
    assert run_request.run_key == f"integration-{integration_id}-20260302T0800+0000"

    assert card_syncing(org, integration_id)  # requested: no run yet
    assert sync_now(integration_id) == 409
    run = instance.add_run(
        DagsterRun(job_name="sync_street", status=DagsterRunStatus.NOT_STARTED, tags=dict(run_request.tags))
    )
    assert evaluate(instance, db.engine(), JOBS) == []  # followed, never relaunched by the request sensor
    assert card_syncing(org, integration_id) and sync_now(integration_id) == 409  # created, waiting to start
    with db.engine().begin() as conn:
        write_event(
            conn, integration_id=integration_id, run_id=run.run_id, trigger="schedule",
            event_type="sync_finished", outcome="success", message="Sync finished",
        )  # fmt: skip
    assert not card_syncing(org, integration_id)  # its run wrote sync_finished
    evaluate(instance, db.engine(), JOBS)
    with db.engine().connect() as conn:
        assert sync_requests.active_request(conn, integration_id) is None
        requested = conn.execute(select(func.count()).where(crm_sync_log.c.event_type == "sync_requested")).scalar_one()
    assert requested == 0  # the schedule's requests keep the log clean
    assert request_id and sync_now(integration_id) == 202


def test_a_pending_sync_now_is_not_scheduled_again(org: int, instance: DagsterInstance) -> None:
    waiting, other = street(org, "Lettings"), street(org, "Sales")
    assert sync_now(waiting) == 202
    assert scheduled(tick(instance)) == [other]
    with db.engine().connect() as conn:
        request = sync_requests.active_request(conn, waiting)
    assert request is not None and request.trigger == "sync_now"


def test_a_retried_tick_asks_for_the_same_runs_and_records_nothing_twice(org: int, instance: DagsterInstance) -> None:
    street(org, "Lettings")
    first = tick(instance)
    again = tick(instance)  # the daemon evaluates a failed tick again
    assert [r.run_key for r in again] == [r.run_key for r in first]
    assert [r.tags for r in again] == [r.tags for r in first]
    with db.engine().connect() as conn:
        assert conn.execute(select(func.count()).select_from(sync_requests.sync_requests)).scalar_one() == 1
    assert tick(instance, TICK + timedelta(hours=4)) == []  # the earlier run is still queued


def test_a_scheduled_request_whose_run_never_appears_is_closed_not_relaunched(
    org: int, instance: DagsterInstance
) -> None:
    integration_id = street(org, "Lettings")
    tick(instance)
    later = utcnow() + RELAUNCH_AFTER + timedelta(seconds=1)
    assert evaluate(instance, db.engine(), JOBS, now=later) == []  # the schedule launches its own runs
    gone = utcnow() + sync_requests.SCHEDULED_RUN_GRACE + timedelta(seconds=1)
    assert evaluate(instance, db.engine(), JOBS, now=gone) == []
    with db.engine().connect() as conn:
        assert sync_requests.active_request(conn, integration_id) is None


def test_a_finished_scheduled_run_ends_its_request_before_the_sensor_links_it(
    org: int, instance: DagsterInstance
) -> None:
    integration_id = street(org, "Lettings")
    tick(instance)
    with db.engine().begin() as conn:  # the run finished between two ticks of the request sensor
        write_event(
            conn, integration_id=integration_id, run_id="a-run", trigger="schedule",
            event_type="sync_finished", outcome="success", message="Sync finished",
        )  # fmt: skip
    assert not card_syncing(org, integration_id)
    assert sync_now(integration_id) == 202


def test_every_queued_run_of_a_big_tick_is_linked_and_stays_syncing(org: int, instance: DagsterInstance) -> None:
    ids = [street(org, f"Branch {i}") for i in range(150)]
    for run_request in tick(instance):  # Dagster creates every run; they wait in its queue
        instance.add_run(
            DagsterRun(job_name="sync_street", status=DagsterRunStatus.NOT_STARTED, tags=dict(run_request.tags))
        )
    evaluate(instance, db.engine(), JOBS)
    gone = utcnow() + sync_requests.SCHEDULED_RUN_GRACE + timedelta(seconds=1)
    evaluate(instance, db.engine(), JOBS, now=gone)
    with db.engine().connect() as conn:
        syncing = {card.id for card in read_model.cards(conn, org) if card.sync_in_progress}
        linked = conn.execute(
            select(func.count()).where(sync_requests.sync_requests.c.run_id.is_not(None))
        ).scalar_one()
    assert syncing == set(ids) and linked == 150
