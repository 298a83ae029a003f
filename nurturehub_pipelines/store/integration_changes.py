"""Changing an integration after it is added: reconnect, rename, pause and resume, quarantine, remove.

One home for every writer (the CLI, the JSON API's PATCH and the page's forms), so the rules hold the same
whichever door a person came in by:
- every change is checked whole before anything is written, and a refusal writes nothing;
- settings given replace those names; credentials given replace the whole set, which must be complete and
  valid for the CRM, as for `integration add`;
- a change of credentials or settings lifts the rejected-credentials quarantine (DESIGN.md, "Running an
  integration"): the person has done what the red card asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from crm_resources.registry import check_credentials, check_settings, crm_name
from nurturehub_pipelines.store.accounts import AccountError, Integration, get_integration
from nurturehub_pipelines.store.secrets import encrypt_credentials
from nurturehub_pipelines.store.tables import (
    alert_outbox,
    contacts,
    crm_sync_log,
    integrations,
    leads,
    notifications,
    skipped_records,
    sync_cursors,
    sync_requests,
    utcnow,
)
from nurturehub_pipelines.store.validation import check_name

# Every table that holds rows of one integration, children first: `remove` empties them all.
INTEGRATION_ROWS = (
    contacts,
    leads,
    sync_cursors,
    skipped_records,
    sync_requests,
    crm_sync_log,
    alert_outbox,
    notifications,
)


@dataclass(frozen=True)
class IntegrationChange:
    """What a person asked to change; None means "leave it as it is"."""

    name: str | None = None
    enabled: bool | None = None
    settings: Mapping[str, str] | None = None
    credentials: Mapping[str, str] | None = None

    @property
    def reconnects(self) -> bool:
        return self.settings is not None or self.credentials is not None


def require_integration(conn: Connection, integration_id: int) -> Integration:
    integration = get_integration(conn, integration_id)
    if integration is None:
        raise AccountError(f"no integration with id {integration_id}")
    return integration


def apply_change(
    conn: Connection, integration_id: int, change: IntegrationChange, actor: str | None = None
) -> Integration:
    """Check the whole change, then write it in the caller's transaction; `actor` is who pauses."""
    integration = require_integration(conn, integration_id)
    values: dict[str, object] = {}
    if change.name is not None:
        values["name"] = check_name(change.name, "integration name")
    if change.settings is not None:
        merged = {**integration.settings, **change.settings}
        check_settings(integration.crm, merged)
        values["settings"] = merged
    if change.credentials is not None:
        credentials = dict(change.credentials)
        check_credentials(integration.crm, credentials)
        values["credentials_encrypted"] = encrypt_credentials(credentials)
    if change.reconnects:
        values.update(quarantined_at=None, quarantine_reason=None)
    if change.enabled is not None and change.enabled != integration.enabled:
        values.update(pause_values(change.enabled, actor, utcnow()))
    if values:
        conn.execute(update(integrations).where(integrations.c.id == integration_id).values(**values))
    return require_integration(conn, integration_id)


def pause_values(enabled: bool, actor: str | None, now: datetime) -> dict[str, object]:
    """Pausing records who and when (the card says "Paused by …"); resuming clears both."""
    if enabled:
        return {"enabled": True, "paused_by": None, "paused_at": None}
    return {"enabled": False, "paused_by": actor, "paused_at": now}


def set_enabled(conn: Connection, integration_id: int, enabled: bool, actor: str | None = None) -> Integration:
    return apply_change(conn, integration_id, IntegrationChange(enabled=enabled), actor)


def remove(conn: Connection, integration_id: int) -> None:
    """The integration and everything stored for it, in one transaction (the caller's)."""
    require_integration(conn, integration_id)
    for table in INTEGRATION_ROWS:
        conn.execute(delete(table).where(table.c.integration_id == integration_id))
    conn.execute(delete(integrations).where(integrations.c.id == integration_id))


def paused_reason(enabled: bool, paused_by: str | None, quarantine_reason: str | None) -> str | None:
    """Why scheduled syncs don't run, in words; None while they do (the card's `paused_reason`)."""
    if not enabled:
        return f"Paused by {paused_by}" if paused_by else "Paused"
    if quarantine_reason:
        return quarantine_reason
    return None


def quarantine_reason(crm: str) -> str:
    """What the card says while the rejected-credentials rule holds the schedule back."""
    name = crm_name(crm)
    return f"Waiting for new {name} credentials: {name} rejected the last ones"


def quarantine(conn: Connection, integration_id: int, crm: str, now: datetime) -> bool:
    """Stop scheduled syncs of an integration whose CRM rejected its credentials; True if it was new."""
    result = conn.execute(
        update(integrations)
        .where(integrations.c.id == integration_id, integrations.c.quarantined_at.is_(None))
        .values(quarantined_at=now, quarantine_reason=quarantine_reason(crm))
    )
    return bool(result.rowcount)


def lift_quarantine(conn: Connection, integration_id: int) -> None:
    conn.execute(
        update(integrations)
        .where(integrations.c.id == integration_id, integrations.c.quarantined_at.is_not(None))
        .values(quarantined_at=None, quarantine_reason=None)
    )


def schedulable(conn: Connection, crm: str) -> list[tuple[int, int]]:
    """(id, org_id) of the CRM's integrations that scheduled syncs may run: enabled and not quarantined."""
    rows = conn.execute(
        select(integrations.c.id, integrations.c.org_id)
        .where(
            integrations.c.crm == crm,
            integrations.c.enabled.is_(True),
            integrations.c.quarantined_at.is_(None),
        )
        .order_by(integrations.c.id)
    ).all()
    return [(row.id, row.org_id) for row in rows]
