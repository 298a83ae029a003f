"""The Catalog: each CRM's contacts and leads, partitioned by integration, and the daily health report."""

from __future__ import annotations

import pytest
from dagster import AssetKey, DefaultScheduleStatus, DefaultSensorStatus, DynamicPartitionsDefinition

from crm_resources import registry
from crm_resources.registry import CRMS
from nurturehub_pipelines.assets.crm_records import crm_record_specs, partitions_name
from nurturehub_pipelines.definitions import defs


def test_the_definitions_hold_two_partitioned_assets_per_crm_and_the_report() -> None:
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    expected = {AssetKey([crm, stream]) for crm in CRMS for stream in ("contacts", "leads")}
    assert len(expected) == 12
    assert set(graph.get_all_asset_keys()) == expected | {AssetKey("sync_health_report")}
    for crm in CRMS:
        for stream in ("contacts", "leads"):
            partitions = graph.get(AssetKey([crm, stream])).partitions_def
            assert isinstance(partitions, DynamicPartitionsDefinition)
            assert partitions.name == partitions_name(crm) == f"{crm}_integrations"  # one per CRM, both streams
    assert graph.get(AssetKey("sync_health_report")).partitions_def is None
    assert len({partitions_name(crm) for crm in CRMS}) == len(CRMS)


def test_a_seventh_crm_in_the_registry_gets_its_two_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "CRMS", (*registry.CRMS, "acme"))  # the registry line (test_adding_a_crm.py)
    specs = {spec.key: spec for spec in crm_record_specs()}
    assert len(specs) == 14
    for stream in ("contacts", "leads"):
        partitions = specs[AssetKey(["acme", stream])].partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == "acme_integrations"


def test_the_report_runs_daily_and_the_partitions_follow_the_integrations_by_default() -> None:
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("sync_health_report_schedule")
    assert schedule.cron_schedule == "0 7 * * *" and schedule.execution_timezone == "Europe/London"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    sensor = repository.get_sensor_def("integration_partitions_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.required_resource_keys == {"app_db"}
    assert repository.get_sensor_def("sync_request_sensor").required_resource_keys == {"app_db"}
    for crm in CRMS:
        assert repository.get_schedule_def(f"sync_{crm}_schedule").required_resource_keys == {"app_db"}
        job = repository.get_job(f"sync_{crm}")
        assert {"crm_api", "app_db", "io_manager"} <= set(job.resource_defs)
