"""The sync steps as Dagster ops. They are the same for every CRM: each job binds its own CRM's
resource to the `crm_api` key, and the ops ask that resource which CRM they are syncing.

The steps hand each other a `SyncState`, a frozen dataclass kept by the job's in-memory IO manager
(`jobs.py`), rather than Nothing dependencies that re-read the run's rows from `crm_sync_log`: the final
step needs each step's skip reasons, which the log keeps only as a sentence, and the state is small and
lives exactly as long as the run's one process (the job runs with the in-process executor). Nothing is
pickled to `DAGSTER_HOME`; the price is that a failed run cannot be re-executed from its failed step,
which a sync never is (the failing step already wrote the run's `sync_finished`: a new run syncs again).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

from dagster import Config, Failure, OpDefinition, OpExecutionContext, op

from crm_resources.core import CrmResource
from crm_resources.registry import crm_name
from nurturehub_pipelines.assets.crm_records import report_materialization
from nurturehub_pipelines.resources import AppDatabase
from nurturehub_pipelines.run_contract import TAG_TRIGGER
from nurturehub_pipelines.store.accounts import get_integration
from nurturehub_pipelines.store.db import retrying
from nurturehub_pipelines.store.secrets import CredentialsUnreadable
from nurturehub_pipelines.sync.engine import StepFailed, StepResult, SyncSession

CRM_KEY = "crm_api"


class SyncConfig(Config):
    """Which integration to sync. Credentials are never here: they are read from the app database."""

    integration_id: int
    full: bool = False


@dataclass(frozen=True)
class SyncState:
    """What one step hands the next: which sync this is, and the results of the steps so far."""

    integration_id: int
    full: bool
    steps: tuple[StepResult, ...] = ()


def _session(context: OpExecutionContext, crm_api: CrmResource, app_db: AppDatabase, state: SyncState) -> SyncSession:
    crm = crm_api.spec.crm
    engine = app_db.engine()
    integration = retrying(engine, lambda conn: get_integration(conn, state.integration_id))
    if integration is None:
        raise Failure(description=f"No integration with id {state.integration_id}")
    if integration.crm != crm:
        raise Failure(
            description=f"Integration {state.integration_id} is a {crm_name(integration.crm)} integration: "
            f"launch sync_{integration.crm}, not sync_{crm}"
        )
    # The resource keeps the run's one client (token, rate limiter, request count) and closes it with the run.
    try:
        credentials = integration.credentials()
    except CredentialsUnreadable as unreadable:
        # The step fails in words for the owner (reconnect); the operator's log says which key to look at.
        context.log.error(f"Integration {integration.id}: {unreadable}")
        client = None
    else:
        client = crm_api.client(integration.settings, credentials)
    trigger = context.run.tags.get(TAG_TRIGGER, "manual")
    return SyncSession(engine, integration, client, run_id=context.run_id, trigger=trigger, full=state.full)


def _run(context: OpExecutionContext, step: Callable[[], StepResult]) -> StepResult:
    try:
        result = step()
    except StepFailed as failed:
        raise Failure(description=failed.result.message, metadata=failed.result.metadata()) from None
    context.add_output_metadata(result.metadata())
    return result


@op
def auth_refresh(
    context: OpExecutionContext, config: SyncConfig, crm_api: CrmResource, app_db: AppDatabase
) -> SyncState:
    state = SyncState(config.integration_id, config.full)
    session = _session(context, crm_api, app_db, state)
    _run(context, session.auth_refresh)
    return state


def _stream_op(name: str, stream: str) -> OpDefinition:
    @op(name=name)
    def import_stream(
        context: OpExecutionContext, state: SyncState, crm_api: CrmResource, app_db: AppDatabase
    ) -> SyncState:
        session = _session(context, crm_api, app_db, state)
        result = _run(context, lambda: session.import_stream(stream))
        report_materialization(context, crm_api.spec.crm, stream, state.integration_id, session.trigger, result)
        return replace(state, steps=(*state.steps, result))

    return import_stream


contact_import = _stream_op("contact_import", "contacts")
lead_update = _stream_op("lead_update", "leads")


@op
def sync_finished(context: OpExecutionContext, state: SyncState, crm_api: CrmResource, app_db: AppDatabase) -> None:
    session = _session(context, crm_api, app_db, state)
    result = session.finish(list(state.steps))
    context.log.info(result.message)
