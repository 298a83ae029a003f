"""The sync steps as Dagster ops. They are the same for every CRM: each job binds its own CRM's
resource to the `crm_api` key, and the ops ask that resource which CRM they are syncing."""

from typing import Any

from dagster import Config, Failure, In, OpExecutionContext, Out, op
from dagster._core.definitions.op_definition import OpDefinition

from crm_resources.core import CrmClient, CrmResource
from crm_resources.registry import crm_name
from nurturehub_pipelines.run_contract import TAG_TRIGGER
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.accounts import get_integration
from nurturehub_pipelines.sync.engine import StepFailed, StepResult, SyncSession

CRM_KEY = "crm_api"

# One client per run: the steps share its token, rate limiter and request count.
_CLIENTS: dict[str, CrmClient] = {}


class SyncConfig(Config):
    """Which integration to sync. Credentials are never here: they are read from the app database."""

    integration_id: int
    full: bool = False


def _session(context: OpExecutionContext, integration_id: int, full: bool) -> SyncSession:
    resource: CrmResource = getattr(context.resources, CRM_KEY)
    crm = resource.spec.crm
    engine = db.engine()
    with engine.connect() as conn:
        integration = get_integration(conn, integration_id)
    if integration is None:
        raise Failure(description=f"No integration with id {integration_id}")
    if integration.crm != crm:
        raise Failure(
            description=f"Integration {integration_id} is a {crm_name(integration.crm)} integration: "
            f"launch sync_{integration.crm}, not sync_{crm}"
        )
    client = _CLIENTS.get(context.run_id)
    if client is None:
        client = _CLIENTS[context.run_id] = resource.client(integration.settings, integration.credentials())
    trigger = context.run.tags.get(TAG_TRIGGER, "manual")
    return SyncSession(engine, integration, client, run_id=context.run_id, trigger=trigger, full=full)


def _run(context: OpExecutionContext, session: SyncSession, step: Any) -> StepResult:
    try:
        result: StepResult = step()
    except StepFailed as failed:
        _close(context.run_id)
        raise Failure(description=failed.result.message, metadata=failed.result.metadata()) from None
    context.add_output_metadata(result.metadata())
    return result


def _close(run_id: str) -> None:
    client = _CLIENTS.pop(run_id, None)
    if client is not None:
        client.close()


@op(required_resource_keys={CRM_KEY}, out=Out(dict))
def auth_refresh(context: OpExecutionContext, config: SyncConfig) -> dict[str, Any]:
    session = _session(context, config.integration_id, config.full)
    _run(context, session, session.auth_refresh)
    return {"integration_id": config.integration_id, "full": config.full, "steps": []}


def _stream_op(name: str, stream: str) -> OpDefinition:
    @op(name=name, required_resource_keys={CRM_KEY}, ins={"state": In(dict)}, out=Out(dict))
    def import_stream(context: OpExecutionContext, state: dict[str, Any]) -> dict[str, Any]:
        session = _session(context, state["integration_id"], state["full"])
        result = _run(context, session, lambda: session.import_stream(stream))
        return {**state, "steps": [*state["steps"], result]}

    return import_stream


contact_import = _stream_op("contact_import", "contacts")
lead_update = _stream_op("lead_update", "leads")


@op(required_resource_keys={CRM_KEY}, ins={"state": In(dict)})
def sync_finished(context: OpExecutionContext, state: dict[str, Any]) -> None:
    session = _session(context, state["integration_id"], state["full"])
    try:
        result = session.finish(state["steps"])
    finally:
        _close(context.run_id)
    context.log.info(result.message)
