"""Migration 0004: the alert watermark left the app database for the sensor's cursor (one cursor mechanism)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import metadata
from tests.support.migrations import migrate


def tables(url: str) -> set[str]:
    return set(inspect(db.engine(url)).get_table_names())


def test_0004_drops_sensor_cursors_and_its_downgrade_brings_it_back(db_url: str) -> None:
    assert "sensor_cursors" not in tables(db_url) and "alert_outbox" in tables(db_url)
    migrate(db_url, "downgrade", "0003")
    assert "sensor_cursors" in tables(db_url)
    migrate(db_url, "upgrade", "head")
    assert "sensor_cursors" not in tables(db_url)


def test_the_migrated_schema_has_no_table_the_code_does_not_declare(db_url: str) -> None:
    with db.engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [change for change in diff if change[0] in ("add_table", "remove_table")] == []
