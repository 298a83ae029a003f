"""How a sync run is named, configured and tagged, and how a run is read back: one home for both ways.

Shared by the CLI, the schedule and the sensors, so what one writes the others parse the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurturehub_pipelines.store.sync_log import TRIGGERS

TAG_INTEGRATION = "nurturehub/integration_id"
TAG_ORG = "nurturehub/org_id"
TAG_CRM = "nurturehub/crm"
TAG_TRIGGER = "nurturehub/trigger"
TAG_REQUEST = "nurturehub/request_id"
# Runs that serve the system rather than sync an integration (alert delivery); the run queue keeps them a slot.
TAG_SERVICE = "nurturehub/service"
SERVICE_ALERT_DELIVERY = "alert_delivery"

CONFIG_OP = "auth_refresh"  # the sync job's first op: its config names the integration


def job_name(crm: str) -> str:
    return f"sync_{crm}"


def run_config(integration_id: int, full: bool) -> dict[str, Any]:
    """Only the integration id and the kind of sync: credentials are read from the database in the run."""
    return {"ops": {CONFIG_OP: {"config": {"integration_id": integration_id, "full": full}}}}


def run_tags(integration_id: int, org_id: int, crm: str, trigger: str) -> dict[str, str]:
    return {
        TAG_INTEGRATION: str(integration_id),
        TAG_ORG: str(org_id),
        TAG_CRM: crm,
        TAG_TRIGGER: trigger,
    }


def integration_of(tags: Mapping[str, str], config: Mapping[str, Any] | None) -> int | None:
    """The integration a sync run is for: its tag, else its run config (a Launchpad run may have only that)."""
    value: Any = tags.get(TAG_INTEGRATION)
    if value is None:
        value = (config or {}).get("ops", {}).get(CONFIG_OP, {}).get("config", {}).get("integration_id")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def trigger_of(tags: Mapping[str, str]) -> str:
    """What started the run; a run without (or with an unknown) trigger tag was started by hand."""
    trigger = tags.get(TAG_TRIGGER, "manual")
    return trigger if trigger in TRIGGERS else "manual"
