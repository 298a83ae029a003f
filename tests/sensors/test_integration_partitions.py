"""The partitions sensor: each CRM's partitions follow the app database's integrations, by Dagster itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)
from sqlalchemy import delete

from crm_resources.registry import CRMS
from nurturehub_pipelines.assets.crm_records import partitions_name
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import integrations
from sensors.integration_partitions import integration_partitions_sensor


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


def evaluate(instance: DagsterInstance) -> SensorResult | SkipReason:
    context = build_sensor_context(instance=instance, resources={"app_db": app_database_from_env()})
    result = integration_partitions_sensor(context)
    assert isinstance(result, SensorResult | SkipReason)
    return result


def tick(instance: DagsterInstance) -> SensorResult | SkipReason:
    """One tick as the daemon runs it: evaluate, then apply the partition requests to the instance."""
    result = evaluate(instance)
    for request in result.dynamic_partitions_requests or [] if isinstance(result, SensorResult) else []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def partitions(instance: DagsterInstance) -> dict[str, list[str]]:
    return {crm: instance.get_dynamic_partitions(partitions_name(crm)) for crm in CRMS}


def test_partitions_follow_integrations_added_and_removed(db_url: str, instance: DagsterInstance) -> None:
    with db.engine().begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")["org_id"]
        reapit = [accounts.add_integration(conn, org, "reapit", f"Branch {i}", {}, {}) for i in range(3)]
        street = accounts.add_integration(conn, org, "street", "Street", {}, {})
        accounts.set_enabled(conn, reapit[2], False)  # disabled, not removed: keeps its partition

    assert isinstance(tick(instance), SensorResult)
    assert partitions(instance) == {crm: [] for crm in CRMS} | {
        "reapit": [str(i) for i in reapit],
        "street": [str(street)],
    }
    assert isinstance(tick(instance), SkipReason)  # in step: nothing to ask

    with db.engine().begin() as conn:
        conn.execute(delete(integrations).where(integrations.c.id == reapit[0]))
        alto = accounts.add_integration(conn, org, "alto", "Alto", {}, {})
    result = tick(instance)
    assert isinstance(result, SensorResult)
    requests = {(type(r), r.partitions_def_name, tuple(r.partition_keys)) for r in result.dynamic_partitions_requests}
    assert requests == {
        (DeleteDynamicPartitionsRequest, "reapit_integrations", (str(reapit[0]),)),
        (AddDynamicPartitionsRequest, "alto_integrations", (str(alto),)),
    }
    assert partitions(instance)["reapit"] == [str(i) for i in reapit[1:]]
    assert partitions(instance)["alto"] == [str(alto)]
