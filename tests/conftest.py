"""Shared fixtures: a fresh app database per test on the engine CI selects (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from nurturehub_pipelines.store import db

PG_ADMIN_URL = os.environ.get("NURTUREHUB_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def test_db_engine() -> str:
    return os.environ.get("NURTUREHUB_TEST_DB", "sqlite")


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty app database; NURTUREHUB_DATABASE_URL and NURTUREHUB_HOME point at it."""
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "test-secret-key")
    if test_db_engine() == "postgres":
        name = f"nh_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("NURTUREHUB_DATABASE_URL", url)
    db.upgrade(url)
    yield url
    db.engine(url).dispose()
    db.read_engine(url).dispose()
    db._engine_for.cache_clear()
    if test_db_engine() == "postgres":
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
