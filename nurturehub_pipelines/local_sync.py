"""One sync in this process, through the same Dagster job the daemon runs: `nurturehub sync` and the demo.

Its own module so the command line and the demo both use it without importing each other. The run
beats (`sync/heartbeat.py`) while it executes, so if this process is killed the daemon's
`run_outcome_sensor` marks the run failed within minutes, not when run monitoring's 3 hours are up.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nurturehub_pipelines.instance import ensure_embedded_instance
from nurturehub_pipelines.store.sync_log import COMPLETED
from nurturehub_pipelines.sync import heartbeat

STEP_FIELDS = ("event_type", "outcome", "records_affected", "records_skipped", "message")
NO_OUTCOME = "the run failed before writing its outcome"


class UnknownIntegration(LookupError):
    """The id names no integration; the message says which."""


@dataclass(frozen=True)
class SyncSummary:
    """What one sync did, from its own `crm_sync_log` rows (the run's outcome is `sync_finished`'s)."""

    integration_id: int
    crm: str
    run_id: str
    full: bool
    steps: list[dict[str, Any]]

    @property
    def finished(self) -> dict[str, Any] | None:
        return next((s for s in self.steps if s["event_type"] == "sync_finished"), None)

    @property
    def outcome(self) -> str:
        return str(self.finished["outcome"]) if self.finished else "error"

    @property
    def message(self) -> str:
        return str(self.finished["message"]) if self.finished else NO_OUTCOME

    @property
    def written(self) -> int:
        return int(self.finished["records_affected"]) if self.finished else 0

    @property
    def skipped(self) -> int:
        return int(self.finished["records_skipped"]) if self.finished else 0

    @property
    def completed(self) -> bool:
        """Success or warning: `nurturehub sync` exits 0."""
        return self.outcome in COMPLETED

    def to_json(self) -> dict[str, Any]:
        """The summary `nurturehub sync` prints (DESIGN.md, CLI)."""
        return {
            "integration_id": self.integration_id,
            "crm": self.crm,
            "run_id": self.run_id,
            "full": self.full,
            "outcome": self.outcome,
            "message": self.message,
            "steps": self.steps,
        }


@contextlib.contextmanager
def _output_to(log_file: Path | None) -> Iterator[None]:
    """Dagster's console logger writes to whatever `sys.stderr` is at each event: point it at the file."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_file, "a", encoding="utf-8") as out,
        contextlib.redirect_stderr(out),
        contextlib.redirect_stdout(out),
    ):
        yield


def run_sync(integration_id: int, full: bool, trigger: str = "manual", log_file: Path | None = None) -> SyncSummary:
    """Run the integration's sync job in process; with `log_file`, Dagster's event log goes there, not stderr."""
    from dagster import DagsterInstance

    from nurturehub_pipelines.jobs import build_sync_job
    from nurturehub_pipelines.run_contract import run_config, run_tags
    from nurturehub_pipelines.store import accounts, db
    from nurturehub_pipelines.store.tables import crm_sync_log

    engine = db.engine()
    integration = db.retrying(engine, lambda conn: accounts.get_integration(conn, integration_id))
    if integration is None:
        raise UnknownIntegration(f"no integration with id {integration_id}")
    ensure_embedded_instance()
    run_id, every = str(uuid.uuid4()), heartbeat.interval()
    tags = {**run_tags(integration.id, integration.org_id, integration.crm, trigger), **heartbeat.beat_tags(every)}
    with (
        _output_to(log_file),
        DagsterInstance.get() as instance,
        heartbeat.beating(instance, run_id, every),
    ):
        # The CRM's job alone (it binds its own resources), not the whole code location: what a sync needs.
        result = build_sync_job(integration.crm).execute_in_process(
            run_config=run_config(integration.id, full),
            tags=tags,
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
        )
    query = select(crm_sync_log).where(crm_sync_log.c.run_id == result.run_id).order_by(crm_sync_log.c.id)
    rows = db.retrying(engine, lambda conn: [dict(row) for row in conn.execute(query).mappings()])
    steps = [{k: row[k] for k in STEP_FIELDS} for row in rows]
    return SyncSummary(integration.id, integration.crm, result.run_id, full, steps)
