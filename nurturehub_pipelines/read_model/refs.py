"""Which integrations a page or a route is about, read without their credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from crm_resources.registry import crm_name
from nurturehub_pipelines.store.integration_changes import paused_reason
from nurturehub_pipelines.store.tables import integrations


@dataclass(frozen=True)
class IntegrationRef:
    """The columns of `integrations` the page needs: never the encrypted credentials."""

    id: int
    org_id: int
    crm: str
    name: str
    enabled: bool
    rate_limited_until: datetime | None
    paused_by: str | None = None
    quarantine_reason: str | None = None
    quarantined_at: datetime | None = None

    @property
    def crm_name(self) -> str:
        return crm_name(self.crm)

    @property
    def display_name(self) -> str:
        return self.name or self.crm_name

    @property
    def paused_reason(self) -> str | None:
        """Why scheduled syncs don't run (a person paused it, or its CRM rejected the credentials)."""
        return paused_reason(self.enabled, self.paused_by, self.quarantine_reason)

    @property
    def scheduled(self) -> bool:
        """Whether the schedule will sync it (`integration_changes.schedulable`'s rule): else no next_sync_at."""
        return self.enabled and self.quarantined_at is None


REF_COLUMNS = (
    integrations.c.id,
    integrations.c.org_id,
    integrations.c.crm,
    integrations.c.name,
    integrations.c.enabled,
    integrations.c.rate_limited_until,
    integrations.c.paused_by,
    integrations.c.quarantine_reason,
    integrations.c.quarantined_at,
)


def integration_refs(conn: Connection, org_id: int) -> list[IntegrationRef]:
    """An organisation's integrations in a stable order, so the cards do not move between refreshes."""
    rows = conn.execute(select(*REF_COLUMNS).where(integrations.c.org_id == org_id).order_by(integrations.c.id)).all()
    return [IntegrationRef(*row) for row in rows]


def integration_ref(conn: Connection, integration_id: int) -> IntegrationRef | None:
    row = conn.execute(select(*REF_COLUMNS).where(integrations.c.id == integration_id)).first()
    return IntegrationRef(*row) if row else None
