"""Engines and migrations for the app database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event

from nurturehub_pipelines import settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


@cache
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the page read while a sync writes; busy_timeout rides out short write locks.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def engine(url: str | None = None) -> Engine:
    return _engine_for(settings.driver_url(url) if url else settings.database_url())


def alembic_config(url: str) -> Config:
    # Imported here: every run process imports this module, and only migrations need alembic (~0.5 s).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None) -> None:
    """Create or migrate the app database to the newest revision."""
    from alembic import command

    eng = engine(url)
    config = alembic_config(str(eng.url.render_as_string(hide_password=False)))
    with eng.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
