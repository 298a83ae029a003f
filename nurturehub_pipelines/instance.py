"""The Dagster instance settings both deployments share: run-queue limits, run monitoring, no run retries.

The repo's `dagster.yaml` (production, PostgreSQL) and the embedded default written under
`$NURTUREHUB_HOME/dagster` (SQLite) must queue runs the same way, so the shared part is defined once here;
a test checks that `dagster.yaml` matches it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from crm_resources import registry
from nurturehub_pipelines import settings
from nurturehub_pipelines.run_contract import SERVICE_ALERT_DELIVERY, TAG_CRM, TAG_INTEGRATION, TAG_SERVICE


def crm_run_ceilings() -> dict[str, int]:
    """How many sync runs of each CRM may run at once, across all integrations: each CRM's declared
    `CrmSpec.max_concurrency`, read from the registry when asked, so a CRM added there gets a ceiling."""
    return {crm: registry.max_concurrency(crm) for crm in registry.CRMS}


# The figures as the registry declares them at import, for readers that want the table (bench).
CRM_RUN_CEILINGS: dict[str, int] = crm_run_ceilings()

# A run killed together with its code server stays STARTED until run monitoring times it out; 3 hours is
# longer than any full sync and shorter than the 4-hour schedule, so a dead run never holds its
# integration's queue slot past the next scheduled sync. (A killed `nurturehub sync` is caught sooner: its
# heartbeat stops, and run_outcome_sensor fails it within minutes.)
MAX_RUNTIME_SECONDS = 3 * 60 * 60


def run_coordinator_config() -> dict[str, Any]:
    """QueuedRunCoordinator: one run at a time per integration, each CRM's ceiling, and a slot for alerts."""
    ceilings = crm_run_ceilings()
    return {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {
            # +1 keeps a slot for alert delivery, so a full sync queue never delays an alert past 60 s.
            "max_concurrent_runs": sum(ceilings.values()) + 1,
            "dequeue_interval_seconds": 1,  # a Sync Now must start within 10 s; a tick is one cheap query
            "dequeue_use_threads": True,
            "dequeue_num_workers": 8,
            "tag_concurrency_limits": [
                {"key": TAG_INTEGRATION, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                *({"key": TAG_CRM, "value": crm, "limit": limit} for crm, limit in ceilings.items()),
                {"key": TAG_SERVICE, "value": SERVICE_ALERT_DELIVERY, "limit": 1},
            ],
        },
    }


def instance_config() -> dict[str, Any]:
    """Everything but storage: the part of dagster.yaml the embedded default and production share."""
    return {
        "run_coordinator": run_coordinator_config(),
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


def ensure_embedded_instance() -> Path:
    """Point DAGSTER_HOME at the embedded default, writing its dagster.yaml unless one is there already."""
    home = settings.dagster_home().resolve()
    config_file = home / "dagster.yaml"
    if not config_file.exists():
        header = "# Written by nurturehub: the embedded default (SQLite under this folder), see instance.py.\n"
        tmp = config_file.with_suffix(f".yaml.{os.getpid()}.tmp")
        # Telemetry off on the embedded default only: a laptop demo should not phone home; production
        # operators decide in their own dagster.yaml.
        config = {**instance_config(), "telemetry": {"enabled": False}}
        tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
        tmp.replace(config_file)  # atomic: two commands starting together never see half a file
    os.environ["DAGSTER_HOME"] = str(home)
    return home
