"""What a change to an integration could touch, read straight from the app database: for "writes nothing"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.secrets import decrypt_credentials
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, sync_requests


def snapshot(db_url: str) -> dict[str, Any]:
    """Every row a change could touch: the integrations (credentials ciphertext included), log and requests."""
    with db.engine(db_url).connect() as conn:
        return {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in (integrations, crm_sync_log, sync_requests)
        }


def stored(db_url: str, integration_id: int) -> dict[str, Any]:
    """The integration's row, with its credentials decrypted."""
    with db.engine(db_url).connect() as conn:
        row = conn.execute(select(integrations).where(integrations.c.id == integration_id)).mappings().one()
    return {**row, "credentials": decrypt_credentials(row["credentials_encrypted"])}
