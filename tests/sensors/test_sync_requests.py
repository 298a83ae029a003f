"""The Sync Now sensor: pending requests become runs once, and leave `launched` when their run ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    SensorResult,
    build_sensor_context,
)
from sqlalchemy import select

from nurturehub_pipelines import run_contract
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.store import accounts, db, sync_requests
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import crm_sync_log, utcnow
from sensors.sync_requests import RELAUNCH_AFTER, evaluate, sync_request_sensor

JOBS = {run_contract.job_name(crm) for crm in ("reapit", "street")}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def ids(db_url: str) -> tuple[int, int]:
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], "reapit", "Reapit", {"customer_id": "H"}, {})
    return org["org_id"], integration_id


def request(integration_id: int, trigger: str = "sync_now", age: timedelta = timedelta(0)) -> str:
    with db.engine().begin() as conn:
        return sync_requests.create(conn, integration_id, trigger, "owner@harbour.example", utcnow() - age)


def active(integration_id: int) -> sync_requests.SyncRequest | None:
    with db.engine().connect() as conn:
        return sync_requests.active_request(conn, integration_id)


def status_of(request_id: str) -> str:
    with db.engine().connect() as conn:
        return conn.execute(
            select(sync_requests.sync_requests.c.status).where(sync_requests.sync_requests.c.id == request_id)
        ).scalar_one()


def add_run(instance: DagsterInstance, request_id: str, status: DagsterRunStatus) -> str:
    run = instance.add_run(
        DagsterRun(job_name="sync_reapit", status=status, tags={run_contract.TAG_REQUEST: request_id})
    )
    return run.run_id


def test_a_pending_request_becomes_one_full_sync_run(ids: tuple[int, int], instance: DagsterInstance) -> None:
    org_id, integration_id = ids
    request_id = request(integration_id, "retry")
    [run_request] = evaluate(instance, db.engine(), JOBS)
    assert run_request.run_key == request_id
    assert run_request.job_name == "sync_reapit"
    assert run_request.run_config == run_contract.run_config(integration_id, full=True)
    assert run_request.tags == {
        **run_contract.run_tags(integration_id, org_id, "reapit", "retry"),
        run_contract.TAG_REQUEST: request_id,
    }
    assert status_of(request_id) == "launched"
    assert evaluate(instance, db.engine(), JOBS) == []  # yielded once; the next tick waits for the run


def test_a_launched_request_with_no_run_is_yielded_again_under_the_same_key(
    ids: tuple[int, int], instance: DagsterInstance
) -> None:
    request_id = request(ids[1])
    evaluate(instance, db.engine(), JOBS)
    [again] = evaluate(instance, db.engine(), JOBS, now=utcnow() + RELAUNCH_AFTER + timedelta(seconds=1))
    assert again.run_key == request_id  # Dagster's run_key dedupe makes this safe if the run did start


def test_the_request_follows_its_run_and_finishes_with_it(ids: tuple[int, int], instance: DagsterInstance) -> None:
    request_id = request(ids[1])
    evaluate(instance, db.engine(), JOBS)
    run_id = add_run(instance, request_id, DagsterRunStatus.STARTED)
    assert evaluate(instance, db.engine(), JOBS) == []
    launched = active(ids[1])
    assert launched is not None and launched.run_id == run_id and launched.status == "launched"
    with db.engine().begin() as conn:
        write_event(
            conn, integration_id=ids[1], event_type="sync_finished", outcome="success", message="done",
            trigger="sync_now", run_id=run_id,
        )  # fmt: skip
    evaluate(instance, db.engine(), JOBS)
    assert status_of(request_id) == "finished"


def test_a_run_that_ends_without_sync_finished_still_ends_the_request(
    ids: tuple[int, int], instance: DagsterInstance
) -> None:
    request_id = request(ids[1])
    evaluate(instance, db.engine(), JOBS)
    add_run(instance, request_id, DagsterRunStatus.CANCELED)
    evaluate(instance, db.engine(), JOBS)
    assert status_of(request_id) == "finished"
    assert active(ids[1]) is None


def test_requests_wait_while_dagster_is_down_and_expire_only_after_a_day(
    ids: tuple[int, int], instance: DagsterInstance
) -> None:
    waited = request(ids[1], age=timedelta(hours=5))  # the daemon was down for five hours
    [run_request] = evaluate(instance, db.engine(), JOBS)
    assert run_request.run_key == waited
    with db.engine().begin() as conn:
        sync_requests.close(conn, waited, "finished", utcnow())
    stale = request(ids[1], age=timedelta(hours=25))
    assert evaluate(instance, db.engine(), JOBS) == []
    assert status_of(stale) == "expired"


def test_a_crm_without_a_job_is_refused_in_the_log(db_url: str, instance: DagsterInstance) -> None:
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        loop_id = accounts.add_integration(conn, org["org_id"], "loop", "Loop", {}, {"api_key": "k"})
    request_id = request(loop_id)
    assert evaluate(instance, db.engine(), JOBS) == []
    assert status_of(request_id) == "expired"
    with db.engine().connect() as conn:
        row = conn.execute(select(crm_sync_log).where(crm_sync_log.c.integration_id == loop_id)).one()
    assert (row.event_type, row.outcome) == ("sync_requested", "error")


def test_the_sensor_definition(ids: tuple[int, int], instance: DagsterInstance) -> None:
    assert sync_request_sensor.default_status == DefaultSensorStatus.RUNNING
    assert sync_request_sensor.minimum_interval_seconds == 2
    assert {target.job_name for target in sync_request_sensor.targets} == {
        f"sync_{crm}" for crm in ("agentos", "reapit", "alto", "street", "loop", "openapi")
    }
    request_id = request(ids[1])
    result = sync_request_sensor(build_sensor_context(instance=instance, resources={"app_db": app_database_from_env()}))
    assert isinstance(result, SensorResult)
    assert [r.run_key for r in result.run_requests or []] == [request_id]
