"""Both Dagster instances load, and queue runs within the same limits: the repo's (PostgreSQL) and the
embedded default (SQLite under $NURTUREHUB_HOME/dagster)."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from sqlalchemy import create_engine, text

from crm_resources import registry
from nurturehub_pipelines.instance import (
    CRM_RUN_CEILINGS,
    crm_run_ceilings,
    ensure_embedded_instance,
    instance_config,
)
from nurturehub_pipelines.run_contract import SERVICE_ALERT_DELIVERY as ALERT_DELIVERY
from nurturehub_pipelines.run_contract import TAG_SERVICE, job_name, run_tags

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("NURTUREHUB_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def test_the_repo_dagster_yaml_is_postgres_from_env_with_the_shared_settings() -> None:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    storage = config.pop("storage")
    assert config == instance_config()
    db = storage["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert db == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }


def test_the_embedded_instance_is_written_once_and_dagster_home_points_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_embedded_instance()
    assert home == tmp_path / "home" / "dagster"
    assert os.environ["DAGSTER_HOME"] == str(home)
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    assert written.pop("telemetry") == {"enabled": False}  # the laptop default does not phone home
    assert written == instance_config()

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")  # an operator's own config
    assert ensure_embedded_instance() == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


@pytest.fixture(params=["embedded_sqlite", "repo_postgres"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    if request.param == "embedded_sqlite":
        monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        ensure_embedded_instance()
        with DagsterInstance.get() as loaded:
            assert type(loaded.run_storage).__name__ == "SqliteRunStorage"
            yield loaded
        return
    name = f"nh_dagster_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url
    for key, value in {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": name,
    }.items():
        monkeypatch.setenv(key, value)
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    try:
        with DagsterInstance.from_config(str(tmp_path)) as loaded:
            assert type(loaded.run_storage).__name__ == "PostgresRunStorage"
            yield loaded
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def add_job_run(instance: DagsterInstance, name: str, tags: dict[str, str], status: DagsterRunStatus) -> str:
    """A run of job `name` as a schedule or sensor would create it (queued runs need a code origin)."""
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("nurturehub_pipelines"), "__repository__"), name
    )
    return create_run_for_test(instance, job_name=name, status=status, tags=tags, remote_job_origin=origin).run_id


def add_run(instance: DagsterInstance, crm: str, integration_id: int, status: DagsterRunStatus) -> str:
    """A run of `sync_<crm>` as the scheduler would create it."""
    return add_job_run(instance, job_name(crm), run_tags(integration_id, 1, crm, "schedule"), status)


def dequeue(instance: DagsterInstance) -> list[str]:
    """The run ids the queue daemon would start on its next tick."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    daemon._logger = logging.getLogger("test_queue")  # noqa: SLF001 - normally set by the daemon controller
    chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), fixed_iteration_time=None)
    return [run.run_id for run in chosen]


def test_the_instance_loads_with_the_queue_monitoring_and_no_run_retries(instance: DagsterInstance) -> None:
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert instance.run_monitoring_enabled
    assert not instance.run_retries_enabled
    assert instance.run_monitoring_max_runtime_seconds == instance_config()["run_monitoring"]["max_runtime_seconds"]


def test_runs_dequeue_one_per_integration_and_within_each_crms_ceiling(instance: DagsterInstance) -> None:
    assert (CRM_RUN_CEILINGS["reapit"], CRM_RUN_CEILINGS["agentos"], CRM_RUN_CEILINGS["openapi"]) == (5, 2, 10)
    add_run(instance, "reapit", 1, DagsterRunStatus.STARTED)
    add_run(instance, "agentos", 20, DagsterRunStatus.STARTED)
    queued: dict[str, tuple[str, int]] = {}
    for crm, integration_id in [
        ("reapit", 1),  # its integration is already running
        ("reapit", 2),
        ("reapit", 2),  # a second run of the same integration waits
        *(("reapit", i) for i in range(3, 8)),
        ("agentos", 21),
        ("agentos", 22),
        *(("openapi", i) for i in range(30, 41)),
    ]:
        queued[add_run(instance, crm, integration_id, DagsterRunStatus.QUEUED)] = (crm, integration_id)

    picked = sorted(queued[run_id] for run_id in dequeue(instance))

    # reapit: 5 minus the running one, first come first served, never integration 1 or 2 twice.
    assert [i for crm, i in picked if crm == "reapit"] == [2, 3, 4, 5]
    assert [i for crm, i in picked if crm == "agentos"] == [21]  # 2 minus the running one
    assert [i for crm, i in picked if crm == "openapi"] == list(range(30, 40))  # 10 of 11


def test_a_full_sync_queue_leaves_alert_delivery_its_slot(instance: DagsterInstance) -> None:
    """Every CRM at its ceiling (so every sync slot taken) and more syncs queued: the alert run still starts."""
    integration_id = 100
    for crm, ceiling in CRM_RUN_CEILINGS.items():
        for _ in range(ceiling):
            integration_id += 1
            add_run(instance, crm, integration_id, DagsterRunStatus.STARTED)
    waiting = {add_run(instance, crm, 900 + i, DagsterRunStatus.QUEUED) for i, crm in enumerate(CRM_RUN_CEILINGS)}
    alerts = [
        add_job_run(instance, "deliver_alerts", {TAG_SERVICE: ALERT_DELIVERY}, DagsterRunStatus.QUEUED)
        for _ in range(2)
    ]
    chosen = dequeue(instance)
    assert chosen == alerts[:1]  # one at a time, and no sync run jumps in
    assert not waiting & set(chosen)


def test_the_ceilings_are_the_crm_declarations_and_a_new_crm_gets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {crm: cls.spec.max_concurrency for crm, cls in registry.REGISTRY.items()} == CRM_RUN_CEILINGS
    config = instance_config()["run_coordinator"]["config"]
    assert config["max_concurrent_runs"] == sum(CRM_RUN_CEILINGS.values()) + 1  # +1: the alert-delivery slot
    assert {"key": TAG_SERVICE, "value": ALERT_DELIVERY, "limit": 1} in config["tag_concurrency_limits"]

    acme = type("AcmeResource", (), {"spec": type("AcmeSpec", (), {"max_concurrency": 3})})
    monkeypatch.setitem(registry.REGISTRY, "acme", acme)
    monkeypatch.setattr(registry, "CRMS", (*registry.CRMS, "acme"))
    assert crm_run_ceilings()["acme"] == 3
    config = instance_config()["run_coordinator"]["config"]
    assert {"key": "nurturehub/crm", "value": "acme", "limit": 3} in config["tag_concurrency_limits"]
    assert config["max_concurrent_runs"] == sum(CRM_RUN_CEILINGS.values()) + 3 + 1
