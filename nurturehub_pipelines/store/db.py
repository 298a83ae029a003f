"""Engines and migrations for the app database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from nurturehub_pipelines import settings
from nurturehub_pipelines.store.sqlite_pragmas import apply_pragmas

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")
log = logging.getLogger(__name__)

RETRY_SECONDS_ENV = "NURTUREHUB_DB_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 30.0  # rides out a PostgreSQL restart or fail-over (seconds), not a long outage
# libpq: give up on a connection attempt after 10 s, and notice a server that vanished (no RST) within ~1 min
# instead of waiting on a dead socket for the kernel's two hours.
PG_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


@cache
def _engine_for(url: str, autocommit: bool = False) -> Engine:
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            apply_pragmas(dbapi_conn)

        return engine
    connect_args = PG_CONNECT_ARGS if url.startswith("postgresql") else {}
    # The read engine does without pre-ping (a round trip per checkout): its one caller, `web.auth.manager_read`,
    # retries a read whose connection turns out dead instead.
    return create_engine(
        url, pool_pre_ping=not autocommit, pool_size=5, max_overflow=10, connect_args=connect_args, **options
    )


def engine(url: str | None = None) -> Engine:
    return _engine_for(settings.driver_url(url) if url else settings.database_url())


def read_engine(url: str | None = None) -> Engine:
    """An engine for read-only requests (the page's GETs), its connections in autocommit for good.

    Each statement of a read already sees its own snapshot under READ COMMITTED, so a transaction around
    a GET's three statements adds only its BEGIN and ROLLBACK: two more PostgreSQL round trips, each a
    wake-up of the server process, which is what a busy machine makes slow. Its own pool, so no checkout
    pays for switching a connection's mode and back, and no ping before a checkout (on PostgreSQL): its
    caller retries a read on a dead connection instead. Never for a write: nothing would be atomic.
    """
    return _engine_for(settings.driver_url(url) if url else settings.database_url(), autocommit=True)


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


class DatabaseUnavailable(RuntimeError):
    """The app database stayed unreachable for the whole retry budget (`seconds`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"NurtureHub's database could not be reached for {seconds:g} s")
        self.seconds = seconds


def is_transient(exc: BaseException, dialect: Dialect) -> bool:
    """A lost or refused connection (a restart, a fail-over), not a wrong statement: worth a fresh connection.

    On PostgreSQL every OperationalError/InterfaceError is (server shutting down or starting up, connection
    refused or reset, deadlock, cancelled statement), whether SQLAlchemy wrapped it or the driver raised it
    from a raw cursor (the COPY upsert); on SQLite only a connection SQLAlchemy invalidated, since its
    OperationalError also means a schema error and `busy_timeout` already waits out locks.
    """
    postgres = dialect.name == "postgresql"
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (postgres and isinstance(exc, OperationalError | InterfaceError))
    if not postgres:
        return False
    dbapi = dialect.loaded_dbapi
    return isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError)


def retry_seconds() -> float:
    return float(os.environ.get(RETRY_SECONDS_ENV) or DEFAULT_RETRY_SECONDS)


class RetryingConnection:
    """One connection for many transactions (a sync's pages), each retried on a fresh connection while the
    database is briefly unreachable. Only for idempotent work: a transaction may run again after a failure
    (and, in the rare case that a commit succeeded but its answer was lost, after it took effect)."""

    def __init__(self, engine: Engine, budget: float | None = None) -> None:
        self.engine = engine
        self.budget = retry_seconds() if budget is None else budget
        self._conn: Connection | None = None

    def run(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` in one transaction, committed; retried with backoff for up to `budget` seconds."""
        started: float | None = None
        wait = 0.5
        while True:
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                with self._conn.begin():
                    return work(self._conn)
            except Exception as exc:
                if not is_transient(exc, self.engine.dialect):
                    raise
                self._discard()
                now = time.monotonic()
                started = now if started is None else started
                if now - started + wait > self.budget:
                    raise DatabaseUnavailable(self.budget) from exc
                cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
                reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                log.warning("app database unavailable (%s); retrying in %.1f s on a new connection", reason, wait)
                time.sleep(wait)
                wait = min(wait * 2, 4.0)

    def _discard(self) -> None:
        """Drop the broken connection: invalidated, so the pool never hands its DBAPI connection out again."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # noqa: BLE001 - it is broken already; a new one is made next
            log.debug("closing a broken connection failed", exc_info=True)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def retrying(engine: Engine, work: Callable[[Connection], T], budget: float | None = None) -> T:
    """One idempotent transaction that rides out a database restart (see `RetryingConnection`)."""
    with RetryingConnection(engine, budget) as conn:
        return conn.run(work)
