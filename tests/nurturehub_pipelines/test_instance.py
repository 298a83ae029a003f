"""Both Dagster instances load, and queue runs within the same limits: the repo's (PostgreSQL) and the
embedded default (SQLite under $NURTUREHUB_HOME/dagster)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
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
from dagster_postgres import PostgresRunStorage
from sqlalchemy import create_engine, event, text

from crm_resources import registry
from nurturehub_pipelines.instance import (
    DATABASE_RUN_CEILING,
    MAX_SYNCS_ENV,
    PRODUCTION_MAX_CONCURRENT_SYNCS,
    default_max_concurrent_syncs,
    ensure_embedded_instance,
    instance_config,
    max_concurrent_syncs,
    postgres_storage,
)
from nurturehub_pipelines.run_contract import SERVICE_ALERT_DELIVERY as ALERT_DELIVERY
from nurturehub_pipelines.run_contract import TAG_CRM, TAG_SERVICE, job_name, run_tags

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("NURTUREHUB_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def test_the_repo_dagster_yaml_is_postgres_from_env_with_the_shared_settings() -> None:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    storage = config.pop("storage")
    assert config == instance_config(PRODUCTION_MAX_CONCURRENT_SYNCS)
    assert storage == postgres_storage(storage["custom"]["config"])  # dagster-postgres, pooled
    db = storage["custom"]["config"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert db == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }


def test_the_embedded_instance_is_written_kept_up_to_date_and_dagster_home_points_at_it(
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

    # Ours and out of date (the deployment's figure changed): rewritten, so the next daemon start uses it.
    monkeypatch.setenv(MAX_SYNCS_ENV, "7")
    ensure_embedded_instance()
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    assert written["run_coordinator"]["config"]["max_concurrent_runs"] == 8

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")  # an operator's own config
    monkeypatch.setenv(MAX_SYNCS_ENV, "9")
    assert ensure_embedded_instance() == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_commands_that_start_together_on_a_new_embedded_home_create_its_storage_once(tmp_path: Path) -> None:
    # Dagster's first open of a SQLite home races (dagster-io/dagster#27390): unserialised, some of these
    # fail and the home keeps two alembic heads, so every later open fails too.
    env = {**os.environ, "NURTUREHUB_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    code = (
        "from dagster import DagsterInstance\n"
        "from nurturehub_pipelines.instance import ensure_embedded_instance\n"
        "ensure_embedded_instance()\n"
        "DagsterInstance.get().dispose()\n"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stderr=subprocess.PIPE) for _ in range(6)
    ]
    failed = [err.decode()[-500:] for p in starts if (err := p.communicate(timeout=120)[1]) and p.returncode]
    assert failed == []
    schedules = tmp_path / "home" / "dagster" / "schedules" / "schedules.db"
    with sqlite3.connect(schedules) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


@pytest.fixture(params=["embedded_sqlite", "repo_postgres"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    if request.param == "embedded_sqlite":
        monkeypatch.setenv(MAX_SYNCS_ENV, "8")  # the deployment's own figure (the repo's file says 20)
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
            assert isinstance(loaded.run_storage, PostgresRunStorage)
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


def test_the_repo_instance_reuses_its_postgres_connections(instance: DagsterInstance) -> None:
    """dagster-postgres alone connects for every storage call; the repo's storage keeps one pool per process."""
    if not isinstance(instance.run_storage, PostgresRunStorage):
        pytest.skip("the repo's PostgreSQL instance only")
    parts = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    engines = {id(part._engine) for part in parts}  # type: ignore[attr-defined]  # noqa: SLF001
    assert len(engines) == 1  # run, event log and schedule storage share it
    connects: list[object] = []
    event.listen(instance.run_storage._engine, "connect", lambda *_: connects.append(1))  # type: ignore[attr-defined]  # noqa: SLF001
    for integration_id in range(10):
        run_id = add_run(instance, "reapit", integration_id, DagsterRunStatus.QUEUED)
        instance.report_run_failed(instance.get_run_by_id(run_id))  # type: ignore[arg-type]
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE  # type: ignore[union-attr]
        assert instance.all_logs(run_id)
    instance.get_runs(limit=5)
    # Another instance of the process (the code server makes one per sensor evaluation): the same pool.
    with DagsterInstance.from_ref(instance.get_ref()) as again:
        assert again.get_runs_count() == 10
    assert len(connects) <= 1  # the first call's connection, reused by every later one (40+ calls)


def test_the_repo_instance_asks_the_catalog_once_whether_a_table_exists(instance: DagsterInstance) -> None:
    """The sensor and schedule state calls each asked PostgreSQL's catalog for the table list."""
    if not isinstance(instance.run_storage, PostgresRunStorage):
        pytest.skip("the repo's PostgreSQL instance only")
    catalog: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "pg_catalog" in statement:
            catalog.append(statement)

    def state_calls() -> None:
        instance.all_instigator_state()
        instance.get_instigator_state("origin", "selector")
        instance.get_runs(limit=1)

    state_calls()
    event.listen(instance.run_storage._engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]  # noqa: SLF001
    for _ in range(5):
        state_calls()
    assert catalog == []


def test_the_instance_loads_with_the_queue_monitoring_and_no_run_retries(instance: DagsterInstance) -> None:
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert instance.run_monitoring_enabled
    assert not instance.run_retries_enabled
    assert instance.run_monitoring_max_runtime_seconds == instance_config()["run_monitoring"]["max_runtime_seconds"]


def sync_limit(instance: DagsterInstance) -> int:
    """The instance's sync-run limit: the `nurturehub/crm` tag limit (no value), one below the queue's size."""
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    (limit,) = (rule["limit"] for rule in queue.tag_concurrency_limits if rule["key"] == TAG_CRM)
    assert queue.max_concurrent_runs == limit + 1  # +1: the alert-delivery slot
    return int(limit)


def test_runs_of_one_crm_fill_every_sync_slot_one_per_integration(instance: DagsterInstance) -> None:
    """No per-CRM ceiling: one CRM's backlog uses every slot (the old Reapit ceiling was 5), each integration once."""
    limit = sync_limit(instance)
    assert limit in (8, PRODUCTION_MAX_CONCURRENT_SYNCS)  # the fixture's figure: env for embedded, file for repo
    add_run(instance, "reapit", 1, DagsterRunStatus.STARTED)
    queued: dict[str, int] = {}
    for integration_id in [1, 2, 2, *range(3, 3 + limit + 5)]:  # 1 is running; 2 is queued twice
        queued[add_run(instance, "reapit", integration_id, DagsterRunStatus.QUEUED)] = integration_id

    picked = sorted(queued[run_id] for run_id in dequeue(instance))

    assert picked == list(range(2, 2 + limit - 1))  # the limit minus the running one, first come first served


def test_the_sync_limit_counts_every_crm_together(instance: DagsterInstance) -> None:
    limit = sync_limit(instance)
    for n in range(limit - 2):
        add_run(instance, registry.CRMS[n % len(registry.CRMS)], 100 + n, DagsterRunStatus.STARTED)
    queued = [add_run(instance, crm, 200 + n, DagsterRunStatus.QUEUED) for n, crm in enumerate(registry.CRMS)]
    assert dequeue(instance) == queued[:2]  # two slots left, whichever CRMs are running


def test_a_full_sync_queue_leaves_alert_delivery_its_slot(instance: DagsterInstance) -> None:
    """Every sync slot taken and more syncs queued: the alert run still starts."""
    limit = sync_limit(instance)
    for n in range(limit):
        add_run(instance, registry.CRMS[n % len(registry.CRMS)], 100 + n, DagsterRunStatus.STARTED)
    waiting = {add_run(instance, crm, 900 + i, DagsterRunStatus.QUEUED) for i, crm in enumerate(registry.CRMS)}
    alerts = [
        add_job_run(instance, "deliver_alerts", {TAG_SERVICE: ALERT_DELIVERY}, DagsterRunStatus.QUEUED)
        for _ in range(2)
    ]
    chosen = dequeue(instance)
    assert chosen == alerts[:1]  # one at a time, and no sync run jumps in
    assert not waiting & set(chosen)


def test_the_sync_limit_is_two_per_core_within_the_database_ceiling_or_the_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert [default_max_concurrent_syncs(cores) for cores in (1, 2, 8, 64)] == [4, 8, 20, DATABASE_RUN_CEILING]
    monkeypatch.delenv(MAX_SYNCS_ENV, raising=False)
    assert max_concurrent_syncs() == default_max_concurrent_syncs(os.cpu_count())
    monkeypatch.setenv(MAX_SYNCS_ENV, "50")  # a deployment with a larger database may go past the default
    config = instance_config()["run_coordinator"]["config"]
    assert config["max_concurrent_runs"] == 51
    assert {"key": TAG_CRM, "limit": 50} in config["tag_concurrency_limits"]
    assert {"key": TAG_SERVICE, "value": ALERT_DELIVERY, "limit": 1} in config["tag_concurrency_limits"]
    assert not [rule for rule in config["tag_concurrency_limits"] if rule["key"] == TAG_CRM and "value" in rule]
    for bad in ("0", "-3", "four", "2.5"):
        monkeypatch.setenv(MAX_SYNCS_ENV, bad)
        with pytest.raises(ValueError, match=MAX_SYNCS_ENV):
            max_concurrent_syncs()
