"""What a sync run reports to the Catalog, and what it leaves on disk: real job, sandbox, app database."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from dagster import DagsterInstance, build_reconstructable_job, execute_job

from nurturehub_pipelines.assets.crm_records import asset_key, partitions_name
from nurturehub_pipelines.instance import ensure_embedded_instance
from nurturehub_pipelines.run_contract import run_config, run_tags

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

CONTACTS, LEADS = 40, 30


def test_each_stream_step_materializes_its_integrations_partition(harness: Harness) -> None:
    harness.control.dataset(harness.crm, contacts=CONTACTS, leads=LEADS, malformed_contacts=2)
    assert harness.instance.get_dynamic_partitions(partitions_name(harness.crm)) == []  # no sensor tick yet

    rows = harness.sync(full=True, trigger="sync_now")

    partition = str(harness.integration_id)
    assert harness.instance.get_dynamic_partitions(partitions_name(harness.crm)) == [partition]
    for stream, event, written in (("contacts", "contact_import", CONTACTS), ("leads", "lead_update", LEADS)):
        event_record = harness.instance.get_latest_materialization_event(asset_key(harness.crm, stream))
        assert event_record is not None and event_record.run_id == rows["_run"]["run_id"]
        materialization = event_record.asset_materialization
        assert materialization is not None and materialization.partition == partition
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        assert metadata["records_synced"] == rows[event]["records_affected"] == written
        assert metadata["records_skipped"] == rows[event]["records_skipped"] == (2 if stream == "contacts" else 0)
        assert metadata["records_read"] == written + metadata["records_skipped"]
        assert isinstance(metadata["requests_made"], int) and metadata["requests_made"] >= 1
        assert isinstance(metadata["duration_seconds"], float)
        assert metadata["trigger"] == "sync_now"
        assert metadata["outcome"] == rows[event]["outcome"]

    harness.sync(full=False)
    assert harness.instance.get_dynamic_partitions(partitions_name(harness.crm)) == [partition]  # added once


def test_a_failed_stream_materializes_nothing(harness: Harness) -> None:
    harness.control.dataset(harness.crm, contacts=CONTACTS, leads=LEADS)
    harness.control.fault(harness.crm, kind="unauthorized", times=-1)

    rows = harness.sync(full=True)

    assert rows["sync_finished"]["outcome"] == "error"
    for stream in ("contacts", "leads"):
        assert harness.instance.get_latest_materialization_event(asset_key(harness.crm, stream)) is None


@pytest.mark.parametrize("crm", ["reapit"])
def test_a_sync_run_pickles_nothing_into_dagster_home(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a run worker runs it (the job's own IO manager, not execute_in_process's in-memory default),
    on an instance configured like the embedded default. Dagster keeps its own compute logs (the steps'
    stdout/stderr) under storage/<run>/compute_logs; nothing else may be written there."""
    harness.control.dataset(harness.crm, contacts=CONTACTS, leads=LEADS)
    monkeypatch.setenv("DAGSTER_HOME", "")  # restored after the test: ensure_embedded_instance sets it
    home = ensure_embedded_instance()
    job = build_reconstructable_job("nurturehub_pipelines.jobs", "build_sync_job", reconstructable_args=(harness.crm,))
    with DagsterInstance.get() as instance:
        result = execute_job(
            job,
            instance,
            run_config=run_config(harness.integration_id, full=True),
            tags=run_tags(harness.integration_id, harness.org_id, harness.crm, "manual"),
        )
        assert result.success
    stored = [p.relative_to(home / "storage") for p in (home / "storage").rglob("*") if p.is_file()]
    assert [p for p in stored if "compute_logs" not in p.parts] == [], stored
    assert os.listdir(home / "storage") in ([], [result.run_id])
