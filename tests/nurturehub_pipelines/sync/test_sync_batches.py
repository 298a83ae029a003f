"""Batched commits: pages are committed together, bounded by rows and by age, and a failure part-way keeps
every record read before it, with the cursor unmoved (the engine's guarantees, now per batch)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from crm_resources import openapi
from crm_resources.core import Endpoint
from crm_resources.openapi import OpenApiResource
from crm_resources.records import Contact
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import contacts, sync_cursors
from nurturehub_pipelines.sync import engine
from nurturehub_pipelines.sync.canonical import content_hash

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

PAGE = 50


@pytest.fixture
def crm() -> str:
    return "openapi"


def batches(h: Harness) -> int:
    """One batch is one transaction, and each stamps its rows with its own `synced_at`."""
    query = select(func.count(func.distinct(contacts.c.synced_at))).where(contacts.c.integration_id == h.integration_id)
    with db.engine().connect() as conn:
        return conn.execute(query).scalar_one()


def cursor_moved(h: Harness) -> bool:
    query = select(sync_cursors.c.high_water).where(
        sync_cursors.c.integration_id == h.integration_id, sync_cursors.c.stream == "contacts"
    )
    with db.engine().connect() as conn:
        return conn.execute(query).scalar_one_or_none() is not None


def test_pages_are_committed_together_up_to_the_row_bound(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BATCH_ROWS", 200)
    monkeypatch.setattr(engine, "BATCH_SECONDS", 3600.0)
    harness.control.dataset("openapi", contacts=450, leads=10)

    result = harness.sync(full=True, page_size=PAGE)

    assert result["contact_import"]["records_affected"] == 450
    assert harness.count("contacts") == 450
    assert batches(harness) == 3  # 200 + 200 + 50 records: 9 pages in 3 transactions, not 9


def test_a_slow_stream_still_commits_every_batch_seconds(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BATCH_ROWS", 10_000)
    monkeypatch.setattr(engine, "BATCH_SECONDS", 0.0)  # every page is already "old enough"
    harness.control.dataset("openapi", contacts=450, leads=10)

    harness.sync(full=True, page_size=PAGE)

    assert batches(harness) == 9


def test_a_failure_part_way_keeps_what_was_read_and_leaves_the_cursor(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH_ROWS", 10_000)  # everything read so far is still one unwritten batch
    monkeypatch.setattr(engine, "BATCH_SECONDS", 3600.0)
    harness.control.dataset("openapi", contacts=450, leads=10)
    harness.control.fault("openapi", stream="contacts", kind="unavailable", after=4, times=-1)

    result = harness.sync(full=True, page_size=PAGE)

    assert result["contact_import"]["outcome"] == "error"
    # Of the four requests let through, the first is the credential check (a page of 1): three pages read.
    assert harness.count("contacts") == 3 * PAGE  # what was read before the fault, written once
    assert not cursor_moved(harness)  # the next sync reads them again (and writes nothing twice)
    harness.control.clear_faults("openapi")
    again = harness.sync(page_size=PAGE)
    assert again["contact_import"]["records_affected"] == 450 - 3 * PAGE
    assert harness.count("contacts") == harness.distinct_ids("contacts") == 450


def test_a_mapper_failing_mid_page_keeps_the_records_before_it_and_leaves_the_cursor(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a mapper (not a skip) fails the step in NurtureHub's words; the records read before it, in
    earlier pages and earlier in its own page, are written, and the cursor stays where it was."""
    monkeypatch.setattr(engine, "BATCH_ROWS", 10_000)
    monkeypatch.setattr(engine, "BATCH_SECONDS", 3600.0)
    harness.control.dataset("openapi", contacts=450, leads=10)
    mapped: list[str] = []

    def failing(raw: Mapping[str, Any], endpoint: Endpoint) -> Contact:
        if len(mapped) == 2 * PAGE + 20:
            raise ZeroDivisionError("a bug")
        mapped.append(str(raw["id"]))
        return openapi.map_contact(raw, endpoint)

    monkeypatch.setattr(OpenApiResource, "spec", replace(openapi.OPENAPI, map_contact=failing))

    result = harness.sync(full=True, page_size=PAGE)

    assert result["contact_import"]["outcome"] == "error"
    assert "NurtureHub failed while running contact_import (ZeroDivisionError)" in result["contact_import"]["message"]
    assert harness.count("contacts") == 2 * PAGE + 20
    assert not cursor_moved(harness)


def test_the_stored_hash_is_the_canonical_json_hash_on_either_engine(harness: Harness) -> None:
    """PostgreSQL computes `content_hash` itself from the staged JSON; it must be the hash SQLite's path
    (and every earlier sync) stored, or an unchanged record would look changed."""
    harness.control.dataset("openapi", contacts=120, leads=10)
    harness.sync(full=True)

    query = select(contacts.c.raw, contacts.c.content_hash).where(contacts.c.integration_id == harness.integration_id)
    with db.engine().connect() as conn:
        rows = conn.execute(query).all()
    assert len(rows) == 120
    assert all(stored == content_hash(raw) for raw, stored in rows)
    assert harness.sync(full=True)["contact_import"]["records_affected"] == 0


def test_sqlite_stores_times_as_sqlalchemy_does(harness: Harness) -> None:
    """The SQLite batch binds its own parameters: its times must be stored in SQLAlchemy's text format
    (with microseconds), or SQL comparisons against rows written by SQLAlchemy would sort them wrongly."""
    if harness.db_url.startswith("postgresql"):
        pytest.skip("SQLite's text storage of times")
    harness.control.dataset("openapi", contacts=20, leads=10)
    harness.sync(full=True)

    with db.engine().connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT source_updated_at, synced_at FROM contacts WHERE integration_id = ?", (harness.integration_id,)
        ).all()
    assert len(stored) == 20
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value) for row in stored for value in row), (
        stored[0]
    )
