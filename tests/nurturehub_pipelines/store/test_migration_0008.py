"""Migration 0008: contacts and leads leave half of each page free on PostgreSQL, so a sync's updates stay
on their page (HOT) and the tables stop growing by a copy per full rewrite; on SQLite it changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from nurturehub_pipelines.store import db
from tests.support.migrations import migrate


def fillfactors(url: str) -> dict[str, str | None]:
    query = text(
        "SELECT relname, (SELECT option_value FROM pg_options_to_table(reloptions) WHERE option_name = 'fillfactor') "
        "FROM pg_class WHERE relname IN ('contacts', 'leads') AND relkind = 'r'"
    )
    with db.engine(url).connect() as conn:
        return {name: value for name, value in conn.execute(query)}


def test_records_tables_are_half_filled_and_the_downgrade_restores_the_default(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("fillfactor is PostgreSQL's")
    assert fillfactors(db_url) == {"contacts": "50", "leads": "50"}
    migrate(db_url, "downgrade", "0007")
    assert fillfactors(db_url) == {"contacts": None, "leads": None}
    migrate(db_url, "upgrade", "head")
    assert fillfactors(db_url) == {"contacts": "50", "leads": "50"}


def test_sqlite_migrates_through_it(db_url: str) -> None:
    if db_url.startswith("postgresql"):
        pytest.skip("the SQLite side")
    migrate(db_url, "downgrade", "0007")
    migrate(db_url, "upgrade", "head")
