"""How a sync run is named, configured and tagged: shared by the CLI, schedule and sensors."""

from __future__ import annotations

from typing import Any

TAG_INTEGRATION = "nurturehub/integration_id"
TAG_ORG = "nurturehub/org_id"
TAG_CRM = "nurturehub/crm"
TAG_TRIGGER = "nurturehub/trigger"
TAG_REQUEST = "nurturehub/request_id"


def job_name(crm: str) -> str:
    return f"sync_{crm}"


def run_config(integration_id: int, full: bool) -> dict[str, Any]:
    """Only the integration id and the kind of sync: credentials are read from the database in the run."""
    return {"ops": {"auth_refresh": {"config": {"integration_id": integration_id, "full": full}}}}


def run_tags(integration_id: int, org_id: int, crm: str, trigger: str) -> dict[str, str]:
    return {
        TAG_INTEGRATION: str(integration_id),
        TAG_ORG: str(org_id),
        TAG_CRM: crm,
        TAG_TRIGGER: trigger,
    }
