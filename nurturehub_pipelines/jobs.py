"""One sync job per CRM, built from the CRM registry by one factory."""

from __future__ import annotations

from dagster import JobDefinition, in_process_executor, job, mem_io_manager

from crm_resources.registry import CRMS, crm_name, resource_from_env
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.run_contract import job_name
from nurturehub_pipelines.sync.ops import CRM_KEY, auth_refresh, contact_import, lead_update, sync_finished


def build_sync_job(crm: str) -> JobDefinition:
    """The same four steps for every CRM; what differs is the CRM resource bound to `crm_api`."""

    # in_process: a sync is sequential, and the multiprocess executor costs ~5 s a run here; it also lets
    # the steps hand their `SyncState` over in memory (mem_io_manager) instead of pickling it to DAGSTER_HOME.
    # max_retries 0: one run writes one sync_finished; the CRM client already retries transient faults.
    @job(
        name=job_name(crm),
        executor_def=in_process_executor,
        tags={"dagster/max_retries": "0"},
        resource_defs={
            CRM_KEY: resource_from_env(crm),
            "app_db": app_database_from_env(),
            "io_manager": mem_io_manager,
        },
        description=f"Sync one {crm_name(crm)} integration: auth, contacts, leads, then its outcome.",
    )
    def sync_job() -> None:
        sync_finished(lead_update(contact_import(auth_refresh())))

    return sync_job


SYNC_JOBS: list[JobDefinition] = [build_sync_job(crm) for crm in CRMS]
