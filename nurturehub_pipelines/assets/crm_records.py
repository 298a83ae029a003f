"""Each CRM's contacts and leads as Dagster assets, one partition per integration.

The assets are declared (`AssetSpec`), not computed by Dagster: the sync jobs stay op jobs, one run per
integration keyed by run config and the run tags of DESIGN.md, and their `contact_import` / `lead_update`
steps report a materialization of their integration's partition. Each CRM has its own
`DynamicPartitionsDefinition`, because an integration belongs to exactly one CRM: a Reapit integration
is never a partition of Alto's contacts. Built from the CRM registry, so a new CRM gets its two assets.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    DynamicPartitionsDefinition,
    OpExecutionContext,
)

from crm_resources import registry
from nurturehub_pipelines.sync.engine import StepResult

STREAMS = ("contacts", "leads")


def partitions_name(crm: str) -> str:
    return f"{crm}_integrations"


def partition_key(integration_id: int) -> str:
    """The partition of an integration: its id, so the Catalog and the app database name it alike."""
    return str(integration_id)


def asset_key(crm: str, stream: str) -> AssetKey:
    return AssetKey([crm, stream])


def crm_partitions(crm: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=partitions_name(crm))


def crm_record_specs() -> list[AssetSpec]:
    """Two assets for every CRM in the registry, read when called: a CRM added there gets its two."""
    return [
        AssetSpec(
            key=asset_key(crm, stream),
            partitions_def=crm_partitions(crm),
            group_name=crm,
            kinds={"sqlalchemy"},
            description=f"{registry.crm_name(crm)} {stream} synced into the app database's `{stream}` table, "
            "one partition per integration (its id). Materialized by each sync run's "
            f"{'contact_import' if stream == 'contacts' else 'lead_update'} step.",
        )
        for crm in registry.CRMS
        for stream in STREAMS
    ]


CRM_PARTITIONS: dict[str, DynamicPartitionsDefinition] = {crm: crm_partitions(crm) for crm in registry.CRMS}


CRM_RECORD_ASSETS: list[AssetSpec] = crm_record_specs()


def ensure_partition(instance: DagsterInstance, crm: str, integration_id: int) -> None:
    """An integration synced (from the CLI, say) before the partitions sensor saw it still gets its partition."""
    name, key = partitions_name(crm), partition_key(integration_id)
    if not instance.has_dynamic_partition(name, key):
        instance.add_dynamic_partitions(name, [key])


def report_materialization(
    context: OpExecutionContext, crm: str, stream: str, integration_id: int, trigger: str, result: StepResult
) -> None:
    """Record what this run wrote into its integration's partition of the stream's asset."""
    ensure_partition(context.instance, crm, integration_id)
    context.log_event(
        AssetMaterialization(
            asset_key=asset_key(crm, stream),
            partition=partition_key(integration_id),
            description=result.message,
            metadata={**result.metadata(), "trigger": trigger},
        )
    )
