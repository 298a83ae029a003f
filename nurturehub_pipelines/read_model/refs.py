"""Which integrations a page or a route is about, read without their credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from crm_resources.registry import crm_name
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

    @property
    def crm_name(self) -> str:
        return crm_name(self.crm)

    @property
    def display_name(self) -> str:
        return self.name or self.crm_name


_REF_COLUMNS = (
    integrations.c.id,
    integrations.c.org_id,
    integrations.c.crm,
    integrations.c.name,
    integrations.c.enabled,
    integrations.c.rate_limited_until,
)


def integration_refs(conn: Connection, org_id: int) -> list[IntegrationRef]:
    """An organisation's integrations in a stable order, so the cards do not move between refreshes."""
    rows = conn.execute(select(*_REF_COLUMNS).where(integrations.c.org_id == org_id).order_by(integrations.c.id)).all()
    return [IntegrationRef(*row) for row in rows]


def integration_ref(conn: Connection, integration_id: int) -> IntegrationRef | None:
    row = conn.execute(select(*_REF_COLUMNS).where(integrations.c.id == integration_id)).first()
    return IntegrationRef(*row) if row else None
