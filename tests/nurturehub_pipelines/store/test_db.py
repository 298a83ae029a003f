"""The app database's URLs: a plain postgresql:// URL gets the driver we ship (psycopg2), others stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurturehub_pipelines import settings
from nurturehub_pipelines.store import db


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://nh:pw@db.example:5432/app", "postgresql+psycopg2://nh:pw@db.example:5432/app"),
        ("postgres://nh@db.example/app", "postgresql+psycopg2://nh@db.example/app"),
        ("postgresql+psycopg2://nh@db.example/app", "postgresql+psycopg2://nh@db.example/app"),
        ("postgresql+psycopg://nh@db.example/app", "postgresql+psycopg://nh@db.example/app"),  # chosen: kept
        ("sqlite:////var/lib/nurturehub/app.db", "sqlite:////var/lib/nurturehub/app.db"),
    ],
)
def test_driver_url(given: str, used: str) -> None:
    assert settings.driver_url(given) == used


def test_an_engine_for_a_plain_postgresql_url_uses_psycopg2() -> None:
    engine = db.engine("postgresql://nh@127.0.0.1:1/never_connected")  # no connection is made
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg2")
    finally:
        engine.dispose()
        db._engine_for.cache_clear()


def test_the_configured_url_is_mapped_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_DATABASE_URL", "postgres://nh@db.example/app")
    assert settings.database_url() == "postgresql+psycopg2://nh@db.example/app"


def test_without_a_configured_url_the_embedded_default_is_sqlite_in_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NURTUREHUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path))
    assert settings.database_url() == f"sqlite:///{tmp_path}/nurturehub.db"
