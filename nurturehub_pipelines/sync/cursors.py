"""Per-stream high-water marks. A cursor moves only after its stream's rows are committed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from nurturehub_pipelines.store.dialect import dialect_insert
from nurturehub_pipelines.store.tables import sync_cursors, utcnow

# A CRM's clock and its paging are not exact: re-read a little behind the mark (upserts absorb it).
LOOK_BACK = timedelta(minutes=5)


def read_from(conn: Connection, integration_id: int, stream: str) -> datetime | None:
    high_water = conn.execute(
        select(sync_cursors.c.high_water).where(
            sync_cursors.c.integration_id == integration_id, sync_cursors.c.stream == stream
        )
    ).scalar_one_or_none()
    return high_water - LOOK_BACK if high_water else None


def advance(conn: Connection, integration_id: int, stream: str, high_water: datetime, full: bool) -> None:
    """Incremental syncs only move the mark forward; a full sync sets it to what it read."""
    stmt = dialect_insert(conn, sync_cursors).values(
        integration_id=integration_id, stream=stream, high_water=high_water, updated_at=utcnow()
    )
    set_ = {"high_water": stmt.excluded.high_water, "updated_at": stmt.excluded.updated_at}
    where = None if full else sync_cursors.c.high_water < stmt.excluded.high_water
    conn.execute(stmt.on_conflict_do_update(index_elements=["integration_id", "stream"], set_=set_, where=where))
