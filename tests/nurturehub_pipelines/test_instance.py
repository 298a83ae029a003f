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

from nurturehub_pipelines.instance import CRM_RUN_CEILINGS, ensure_embedded_instance, instance_config
from nurturehub_pipelines.run_contract import job_name, run_tags

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
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == instance_config()

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # an operator's own config
    assert ensure_embedded_instance() == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


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


def add_run(instance: DagsterInstance, crm: str, integration_id: int, status: DagsterRunStatus) -> str:
    """A run of `sync_<crm>` as the scheduler would create it (queued runs need a code origin)."""
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("nurturehub_pipelines"), "__repository__"), job_name(crm)
    )
    tags = run_tags(integration_id, 1, crm, "schedule")
    return create_run_for_test(
        instance, job_name=job_name(crm), status=status, tags=tags, remote_job_origin=origin
    ).run_id


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

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    daemon._logger = logging.getLogger("test_queue")  # noqa: SLF001 - normally set by the daemon controller
    chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), fixed_iteration_time=None)
    picked = sorted(queued[run.run_id] for run in chosen)

    # reapit: 5 minus the running one, first come first served, never integration 1 or 2 twice.
    assert [i for crm, i in picked if crm == "reapit"] == [2, 3, 4, 5]
    assert [i for crm, i in picked if crm == "agentos"] == [21]  # 2 minus the running one
    assert [i for crm, i in picked if crm == "openapi"] == list(range(30, 40))  # 10 of 11
