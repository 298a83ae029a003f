"""Keep each CRM's integration partitions in step with the app database's integrations.

Dagster owns the partitions (the Catalog reads them from its instance), the app database owns the
integrations; this sensor is the one bridge: it adds a partition for each new integration and deletes
those of removed ones. Disabled integrations keep theirs: their history is still theirs. The sync ops also
add their own partition when it is missing (`assets.crm_records.ensure_partition`), for a sync that runs
before the next tick.
"""

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import Engine, select

from nurturehub_pipelines.assets.crm_records import CRM_PARTITIONS, partition_key
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.store.tables import integrations

PartitionsRequest = AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest


def partition_requests(instance: DagsterInstance, engine: Engine) -> list[PartitionsRequest]:
    """Per CRM, one add request for the integrations without a partition, one delete for the partitions
    without an integration: one query of ids, whatever the number of integrations."""
    with engine.connect() as conn:
        rows = conn.execute(select(integrations.c.id, integrations.c.crm).order_by(integrations.c.id)).all()
    wanted: dict[str, list[str]] = {crm: [] for crm in CRM_PARTITIONS}
    for row in rows:
        if row.crm in wanted:
            wanted[row.crm].append(partition_key(row.id))
    requests: list[PartitionsRequest] = []
    for crm, keys in wanted.items():
        partitions = CRM_PARTITIONS[crm]
        assert partitions.name is not None
        have = instance.get_dynamic_partitions(partitions.name)
        have_set, keys_set = set(have), set(keys)
        added = [key for key in keys if key not in have_set]
        gone = [key for key in have if key not in keys_set]
        if added:
            requests.append(partitions.build_add_request(added))
        if gone:
            requests.append(partitions.build_delete_request(gone))
    return requests


@sensor(
    name="integration_partitions_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition to its CRM's contacts and leads for each new integration; "
    "deletes those of removed integrations.",
)
def integration_partitions_sensor(context: SensorEvaluationContext, app_db: AppDatabase) -> SensorResult | SkipReason:
    requests = partition_requests(context.instance, app_db.engine())
    if not requests:
        return SkipReason("Every integration has its partition.")
    return SensorResult(dynamic_partitions_requests=requests)
