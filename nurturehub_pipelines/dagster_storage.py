"""Dagster's PostgreSQL storage (dagster-postgres) with one small connection pool per process.

dagster-postgres opens a new PostgreSQL connection for every storage call (SQLAlchemy `NullPool`, so an
instance never holds connections), and each new instance (a run worker's, and one per sensor evaluation in
the code server) first inspects the tables over three more. Every event a run writes, every read of the
queue's once-a-second tick and of each sensor tick is then a new backend: PostgreSQL forks, authenticates
and loads its catalog caches, ~5 ms of its CPU and ~1 ms of the client's on this machine. Measured through
the daemon (bench/README.md, figure 4): ~330 connections per no-change sync run and ~24 a second with
nothing to run, most of PostgreSQL's CPU per run.

`PooledPostgresStorage` is dagster-postgres itself, configured the same way (its `postgres:` block:
`postgres_db` or `postgres_url`), with the same tables and migrations; only its engine differs. Every
instance of a process on the same database shares one engine (run, event log and schedule storage alike),
which keeps up to `POOL_SIZE` connections open for reuse: a run worker uses one, the daemon's threads a few.
`pool_pre_ping` checks a connection before each use, so a PostgreSQL restart costs a reconnect, not a failed
storage call; a forked child never reuses its parent's connections. The tables are inspected once per
process (and created, as dagster-postgres does, when the database is new). The webserver still swaps in
its own pools (`optimize_for_webserver`), as with plain dagster-postgres.

Dagster's storages also ask the catalog, on most calls, whether a table or column exists (the schedule
storage's `has_instigators_table` on every sensor-state read and write: ~10 catalog queries a second from
an idle daemon). A table or column that exists stays (migrations only add), so a yes is remembered for the
process (`_once_true`); a no is asked again, so a `dagster instance migrate` is seen without a restart.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
    retry_pg_connection_fn,
)

if TYPE_CHECKING:
    from dagster._core.storage.config import PostgresStorageConfig
    from dagster_postgres.auth import PgTokenProvider

# Connections kept open per process: a run worker uses one; the daemon's threads (queue, sensors,
# schedules, run monitoring) seldom more than a few at once, and more are opened (and closed after use) up
# to MAX_OVERFLOW. 20 runs at once (instance.py) hold ~20 of PostgreSQL's default 100 connections.
POOL_SIZE = 4
MAX_OVERFLOW = 16
RECYCLE_SECONDS = 3600  # an idle timeout, or a proxy in front of PostgreSQL, never hands out a dead one

# The tables whose absence makes dagster-postgres create its schema (run, event log, schedule storage).
REQUIRED_TABLES = ({"runs", "instance_info"}, {"event_logs"}, {"jobs"})

_engines: dict[str, sqlalchemy.Engine] = {}
_checked: set[str] = set()
_lock = threading.Lock()


def shared_engine(postgres_url: str) -> sqlalchemy.Engine:
    """This process's pooled engine on the database (created on first use, kept for the process's life)."""
    with _lock:
        engine = _engines.get(postgres_url)
        if engine is None:
            engine = _engines[postgres_url] = create_pg_engine(
                postgres_url,
                isolation_level="AUTOCOMMIT",  # as dagster-postgres: its statements expect autocommit
                pool_size=POOL_SIZE,
                max_overflow=MAX_OVERFLOW,
                pool_pre_ping=True,
                pool_recycle=RECYCLE_SECONDS,
            )
        return engine


def _forget_parents_connections() -> None:
    """In a forked child: the pooled connections are the parent's sockets; open new ones, leave those."""
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parents_connections)


_known: set[tuple[str, str, tuple[str, ...]]] = set()
Check = TypeVar("Check", bound=Callable[..., bool])


def _once_true(check: Check) -> Check:
    """A storage's "does this table/column/index exist" check, answered from memory once it has said yes."""

    @functools.wraps(check)
    def remembered(self: Any, *args: Any) -> bool:
        key = (self.postgres_url, check.__name__, tuple(a for a in args if isinstance(a, str)))
        if key in _known:
            return True
        found = check(self, *args)
        if found:
            _known.add(key)
        return found

    return remembered  # type: ignore[return-value]


class _RunStorage(PostgresRunStorage):
    has_run_stats_index_cols = _once_true(PostgresRunStorage.has_run_stats_index_cols)
    has_bulk_actions_selector_cols = _once_true(PostgresRunStorage.has_bulk_actions_selector_cols)
    has_backfill_id_column = _once_true(PostgresRunStorage.has_backfill_id_column)
    has_bulk_action_job_name_column = _once_true(PostgresRunStorage.has_bulk_action_job_name_column)
    has_backfill_tags_table = _once_true(PostgresRunStorage.has_backfill_tags_table)


class _EventLogStorage(PostgresEventLogStorage):
    has_table = _once_true(PostgresEventLogStorage.has_table)
    has_asset_key_index_cols = _once_true(PostgresEventLogStorage.has_asset_key_index_cols)


class _ScheduleStorage(PostgresScheduleStorage):
    has_instigators_table = _once_true(PostgresScheduleStorage.has_instigators_table)
    _has_instigators_table = _once_true(PostgresScheduleStorage._has_instigators_table)
    _has_asset_daemon_asset_evaluations_table = _once_true(
        PostgresScheduleStorage._has_asset_daemon_asset_evaluations_table
    )
    has_secondary_index_table = _once_true(PostgresScheduleStorage.has_secondary_index_table)
    has_built_index = _once_true(PostgresScheduleStorage.has_built_index)


# Each dagster-postgres storage becomes its subclass above: same state, same methods, the checks remembered.
REMEMBERING: dict[type[Any], type[Any]] = {
    PostgresRunStorage: _RunStorage,
    PostgresEventLogStorage: _EventLogStorage,
    PostgresScheduleStorage: _ScheduleStorage,
}


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres's storage on the process's pooled engine, instead of a new connection per call."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: PgTokenProvider | None = None,
    ) -> None:
        if token_provider is not None:  # a token per connection (cloud auth): dagster-postgres's own way
            super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
            return
        engine = shared_engine(postgres_url)
        create = should_autocreate_tables and postgres_url not in _checked and self._tables_missing(engine)
        super().__init__(postgres_url, create, inst_data, token_provider)
        if should_autocreate_tables:
            _checked.add(postgres_url)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            unpooled, storage._engine = storage._engine, engine  # noqa: SLF001 - the engine, and
            unpooled.dispose()
            storage.__class__ = REMEMBERING[type(storage)]  # the checks remembered (no state of their own)

    @staticmethod
    def _tables_missing(engine: sqlalchemy.Engine) -> bool:
        tables = set(retry_pg_connection_fn(lambda: sqlalchemy.inspect(engine).get_table_names()))
        return any(not required <= tables for required in REQUIRED_TABLES)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=bool(config_value.get("should_autocreate_tables", True)),
            token_provider=get_token_provider_from_config(config_value),
        )
