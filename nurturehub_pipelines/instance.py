"""The Dagster instance settings both deployments share: run-queue limits, run monitoring, no run retries.

The repo's `dagster.yaml` (production, PostgreSQL) and the embedded default written under
`$NURTUREHUB_HOME/dagster` (SQLite) must queue runs the same way, so the shared part is defined once here;
a test checks that `dagster.yaml` matches it (at its figure of sync runs, PRODUCTION_MAX_CONCURRENT_SYNCS).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import yaml

from nurturehub_pipelines import settings
from nurturehub_pipelines.run_contract import SERVICE_ALERT_DELIVERY, TAG_CRM, TAG_INTEGRATION, TAG_SERVICE

# How many sync runs may run at once on this deployment, whatever their CRM. The vendors' limits are per
# customer (Reapit: 5 concurrent requests and 20 req/s per customer; agentOS: 50 req/min per key), and one
# run per integration already keeps each customer at one run, so the queue only protects what the runs
# share: this machine's cores (a run worker is CPU-bound: start-up and imports) and the database's
# connections. A per-CRM ceiling across all customers would only make one agency's long full sync take a
# share of every other agency's capacity.
MAX_SYNCS_ENV = "NURTUREHUB_MAX_CONCURRENT_SYNCS"
# A no-change run is ~1 s of work and a freed slot waits for the next dequeue (once a second): at 2 per core
# the runs went in waves that left the cores ~30 % idle; 4 per core keep them ~92 % busy (bench/README.md,
# the 1,000-run fleet alternated 4 / 8 / 4 at once on 2 cores: 596 / 471 / 621 s).
RUNS_PER_CORE = 4
# PostgreSQL's default max_connections is 100; a sync run holds a few (its streams, the log, Dagster's
# storage) beside the daemon, code server, webserver and page: 20 runs at once leave room for the rest.
DATABASE_RUN_CEILING = 20
# The figure in the repo's static dagster.yaml and deploy/dagster.k8s.yaml: Dagster reads `{env: ...}` for
# `max_concurrent_runs` but not for a tag limit, and the alert slot needs both to move together, so a
# static file carries the number (one place, the `nurturehub/crm` limit; see docs/operations.md).
PRODUCTION_MAX_CONCURRENT_SYNCS = DATABASE_RUN_CEILING


def default_max_concurrent_syncs(cores: int | None = None) -> int:
    """Four sync runs per core, within what the database's connections allow."""
    return max(1, min(RUNS_PER_CORE * (cores or os.cpu_count() or 1), DATABASE_RUN_CEILING))


def max_concurrent_syncs() -> int:
    """NURTUREHUB_MAX_CONCURRENT_SYNCS when set (a positive whole number), else the default for this machine."""
    raw = os.environ.get(MAX_SYNCS_ENV, "").strip()
    if not raw:
        return default_max_concurrent_syncs()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MAX_SYNCS_ENV} must be a whole number of runs, 1 or more (got {raw!r})")
    return int(raw)


# A run killed together with its code server stays STARTED until run monitoring times it out; 3 hours is
# longer than any full sync and shorter than the 4-hour schedule, so a dead run never holds its
# integration's queue slot past the next scheduled sync. (A killed `nurturehub sync` is caught sooner: its
# heartbeat stops, and run_outcome_sensor fails it within minutes.)
MAX_RUNTIME_SECONDS = 3 * 60 * 60


def run_coordinator_config(max_syncs: int) -> dict[str, Any]:
    """QueuedRunCoordinator: one run at a time per integration, `max_syncs` sync runs, and a slot for alerts."""
    return {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {
            # +1 keeps a slot for alert delivery, so a full sync queue never delays an alert past 60 s.
            "max_concurrent_runs": max_syncs + 1,
            "dequeue_interval_seconds": 1,  # a Sync Now must start within 10 s; a tick is one cheap query
            "dequeue_use_threads": True,
            "dequeue_num_workers": 8,
            "tag_concurrency_limits": [
                {"key": TAG_INTEGRATION, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                # No value: the limit counts every sync run (each carries its CRM's tag), whatever the CRM.
                {"key": TAG_CRM, "limit": max_syncs},
                {"key": TAG_SERVICE, "value": SERVICE_ALERT_DELIVERY, "limit": 1},
            ],
        },
    }


POOLED_POSTGRES_STORAGE = {"module": "nurturehub_pipelines.dagster_storage", "class": "PooledPostgresStorage"}
# Run workers forked from a process that has imported Dagster once (run_launcher.py says why): a run's CPU
# goes from ~3.3 to ~0.7 s (bench/README.md). Single-host deployments only; Kubernetes has its own launcher.
FORKSERVER_RUN_LAUNCHER = {"module": "nurturehub_pipelines.run_launcher", "class": "ForkserverRunLauncher"}


def postgres_storage(postgres: dict[str, Any]) -> dict[str, Any]:
    """The `storage` block of a PostgreSQL instance: dagster-postgres, configured as its own `postgres:` block
    (`postgres_db` or `postgres_url`), with a connection pool per process (`dagster_storage.py` says why)."""
    return {"custom": {**POOLED_POSTGRES_STORAGE, "config": postgres}}


def instance_config(max_syncs: int | None = None) -> dict[str, Any]:
    """Everything but storage: the part of dagster.yaml the embedded default and production share.

    `max_syncs` None: this deployment's figure (`max_concurrent_syncs()`); the static production files pass
    PRODUCTION_MAX_CONCURRENT_SYNCS."""
    return {
        "run_launcher": FORKSERVER_RUN_LAUNCHER,
        "run_coordinator": run_coordinator_config(max_concurrent_syncs() if max_syncs is None else max_syncs),
        # Marks runs failed that never start, hang while cancelling or outlive MAX_RUNTIME_SECONDS, so the
        # failure sensor can write their sync_finished/error row.
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": 180,
            "cancel_timeout_seconds": 180,
            "max_runtime_seconds": MAX_RUNTIME_SECONDS,
            "max_resume_run_attempts": 0,
            "poll_interval_seconds": 30,
        },
        # One run, one sync_finished: the CRM client already retries transient faults inside the run.
        "run_retries": {"enabled": False},
        # Threads, so the alert sensors tick every few seconds while the sync-request sensor works, and a
        # schedule tick of thousands of integrations submits its runs in parallel.
        "sensors": {"use_threads": True, "num_workers": 4},
        "schedules": {"use_threads": True, "num_workers": 6, "num_submit_workers": 8},
    }


EMBEDDED_HEADER = "# Written by nurturehub: the embedded default (SQLite under this folder), see instance.py.\n"


def ensure_embedded_instance() -> Path:
    """Point DAGSTER_HOME at the embedded default, writing its dagster.yaml unless one is there already."""
    home = settings.dagster_home().resolve()
    config_file = home / "dagster.yaml"
    # Telemetry off on the embedded default only: a laptop demo should not phone home; production
    # operators decide in their own dagster.yaml.
    config = {**instance_config(), "telemetry": {"enabled": False}}
    wanted = EMBEDDED_HEADER + yaml.safe_dump(config, sort_keys=False)
    current = config_file.read_text() if config_file.exists() else None
    # Written when missing, and rewritten when it is ours and out of date (NURTUREHUB_MAX_CONCURRENT_SYNCS
    # or the machine's cores changed); an operator's own file (no header) is left alone.
    if current is None or (current.startswith(EMBEDDED_HEADER) and current != wanted):
        home.mkdir(parents=True, exist_ok=True)
        tmp = config_file.with_suffix(f".yaml.{os.getpid()}.tmp")
        tmp.write_text(wanted)
        tmp.replace(config_file)  # atomic: two commands starting together never see half a file
    os.environ["DAGSTER_HOME"] = str(home)
    initialize_storage(home)
    return home


STORAGE_READY = ".nurturehub-storage-ready"


def initialize_storage(home: Path) -> None:
    """Create the instance's storage once, one process at a time, before anything else opens it.

    Dagster's first open of a new SQLite home is not safe to race: two processes that create it together
    can both stamp `alembic_version`, and every later open of that home fails with "more than one head
    present" (dagster-io/dagster#27390). A `nurturehub sync` started beside a fresh daemon, or two syncs
    started together, would do just that; a lock file and a marker make the first open a one-off.
    """
    marker = home / STORAGE_READY
    if marker.exists() or not _sqlite_storage(home / "dagster.yaml"):
        return  # a server database (PostgreSQL) takes its own locks
    from dagster import DagsterInstance

    with (home / f"{STORAGE_READY}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not marker.exists():
            DagsterInstance.from_config(str(home)).dispose()
            marker.touch()


def _sqlite_storage(config_file: Path) -> bool:
    """Whether the home's dagster.yaml keeps Dagster's storage in SQLite files (Dagster's default)."""
    config = (yaml.safe_load(config_file.read_text()) if config_file.exists() else None) or {}
    legacy = ("run_storage", "event_log_storage", "schedule_storage")
    storage = config.get("storage")
    return not any(key in config for key in legacy) and (storage is None or "sqlite" in storage)
