"""Bulk, idempotent upserts: one batch of pages a statement, and only changed rows are written or counted.

A batch is built as it will travel: COPY text on PostgreSQL, parameter tuples on SQLite, each record
serialised once (its canonical JSON is both hashed and stored). The per-record work here is the engine's
hot path (bench/README.md, "Where a full sync's time goes"), so it avoids per-row dicts and generic dispatch.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Boolean, Connection, Dialect, Table, select, update
from sqlalchemy.types import TypeEngine

from crm_resources.records import Contact, Lead
from nurturehub_pipelines.store.tables import UTCDateTime, utcnow
from nurturehub_pipelines.sync.canonical import canonical_json
from nurturehub_pipelines.sync.sqlite_writer import HASH_FUNCTION, register_content_hash

# COPY's text format: backslash, tab, newline and carriage return are escaped inside a field.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"
# `content_hash` as PostgreSQL computes it from the staged `raw`: json keeps its input text verbatim, and
# canonical JSON is ASCII, so these are the bytes `canonical.digest` hashes on SQLite.
_SERVER_HASH = "encode(sha256(convert_to(raw::text, 'UTF8')), 'hex')"
# Columns the engine writes itself, after the record's own fields.
_OWN = ("integration_id", "raw", "content_hash", "synced_at")


def _copy_text(value: str) -> str:
    # Most fields need no escaping, and four `in` scans cost less than one dict-table `translate`.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_value(value: Any) -> str:
    if value is None:
        return _NULL
    if type(value) is str:
        return _copy_text(value)
    if type(value) is bool:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return _copy_text(str(value))


def _sqlite_time(value: datetime) -> str:
    """What `UTCDateTime` and SQLite's DATETIME bind write (naive UTC text, with microseconds), in one call
    instead of two Python-level processors: equal for every datetime (tests/.../test_upsert_binds.py)."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_bind(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The bind processor for one column on SQLite: the dialect's own, or an equal faster one for the two
    types every record carries (a time, a flag)."""
    if isinstance(column_type, UTCDateTime):
        return _sqlite_time
    if isinstance(column_type, Boolean):
        return int
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _record_fields(record_type: type[Contact | Lead], table: Table) -> tuple[str, ...]:
    """The record's fields that are table columns, in the table's column order."""
    names = {f.name for f in fields(record_type)} - {"raw"}
    return tuple(c.name for c in table.columns if c.name in names)


class RowBuilder:
    """How one stream's records travel: a COPY line on PostgreSQL, a parameter tuple on SQLite, each
    record's canonical JSON made once. Made once a stream (`mapping.map_page` calls `build`). The batch's own
    `synced_at` is not in a row: the batch supplies it at write time, so one transaction stamps its rows alike."""

    def __init__(self, table: Table, integration_id: int, dialect: Dialect) -> None:
        record_type = Contact if table.name == "contacts" else Lead
        self.table = table
        self.integration_id = integration_id
        self.postgres = dialect.name == "postgresql"
        self.fields = _record_fields(record_type, table)
        self.columns = (*self.fields, *_OWN)
        self._get = attrgetter(*self.fields)
        # SQLite gets parameters as SQLAlchemy would bind them (naive UTC times as text, 0/1 booleans); only
        # the fields that need it are touched.
        binds = [] if self.postgres else [sqlite_bind(table.c[name].type, dialect) for name in self.fields]
        self._binds = [(i, bind) for i, bind in enumerate(binds) if bind is not None]
        self.build: Callable[[Contact | Lead], Any] = self._copy_line if self.postgres else self._parameters

    def _copy_line(self, record: Contact | Lead) -> str:
        raw = canonical_json(record.raw)
        values = "\t".join([_copy_text(v) if type(v) is str else _copy_value(v) for v in self._get(record)])
        # JSON escapes every control character, so only its backslashes need COPY's escaping. The hash is
        # left to the server (`_SERVER_HASH`): the same sha256 of the same bytes, on the database's core.
        raw_text = raw.decode().replace("\\", "\\\\")
        return f"{values}\t{self.integration_id}\t{raw_text}\n"

    def _parameters(self, record: Contact | Lead) -> tuple[Any, ...]:
        # No hash here: the statement has SQLite compute it from `raw` (`sqlite_writer.HASH_FUNCTION`), in
        # the writer process when there is one.
        values = list(self._get(record))
        for i, bind in self._binds:
            if (value := values[i]) is not None:
                values[i] = bind(value)
        return (*values, self.integration_id, canonical_json(record.raw).decode())


class RowBatch:
    """One stream's records awaiting one write; a record repeated (it moved while paging) counts once,
    and the newest read of it wins, since one statement can't write a row twice."""

    def __init__(self, builder: RowBuilder) -> None:
        self.builder = builder
        self.table = builder.table
        self.columns = builder.columns
        self._rows: dict[str, Any] = {}
        self.synced_at = utcnow()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, record: Contact | Lead) -> None:
        self._rows[record.external_id] = self.builder.build(record)

    def extend(self, rows: Iterable[tuple[str, Any]]) -> None:
        """Rows `RowBuilder.build` made (`(external_id, row)`, in read order), as `mapping.map_page` returns them."""
        self._rows.update(rows)

    def sqlite_statement(self) -> str:
        """The upsert `parameters()` are bound to: positional, `raw`'s slot bound twice (stored, hashed), the
        batch's `synced_at` written in (digits and separators only: `_sqlite_time`)."""
        listed = ", ".join(self.columns)
        raw = len(self.builder.fields) + 2
        slots = [f"?{i}" for i in range(1, raw + 1)] + [f"{HASH_FUNCTION}(?{raw})", f"'{_sqlite_time(self.synced_at)}'"]
        return f"INSERT INTO {self.table.name} ({listed}) VALUES ({', '.join(slots)}) {self._upsert_tail()}"

    def parameters(self) -> list[tuple[Any, ...]]:
        return list(self._rows.values())

    def write(self, conn: Connection) -> int:
        """Insert new records and update changed ones; returns how many rows were written.

        An unchanged record (same raw content, same deleted flag) matches the conflict target but fails
        the WHERE, so it is neither rewritten nor counted: overlapping reads are harmless.
        """
        if not self._rows:
            return 0
        if self.builder.postgres:
            return self._merge_via_copy(conn)
        return self._executemany(conn)

    def _upsert_tail(self) -> str:
        name = self.table.name
        changing = [c for c in self.columns if c not in ("integration_id", "external_id")]
        return (
            "ON CONFLICT (integration_id, external_id) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in changing)
            + f" WHERE {name}.content_hash <> excluded.content_hash OR {name}.deleted <> excluded.deleted"
        )

    def _merge_via_copy(self, conn: Connection) -> int:
        """COPY into a per-connection staging table, then one INSERT .. SELECT .. ON CONFLICT: the rows
        travel as COPY text instead of a VALUES list the server parses (bench/README.md). The staging table
        is emptied at commit."""
        stage = f"nh_stage_{self.table.name}"
        listed = ", ".join(self.columns)
        copied = ", ".join(c for c in self.columns if c not in ("content_hash", "synced_at"))
        own = {"content_hash": _SERVER_HASH, "synced_at": "%s"}
        selected = ", ".join(own.get(c, c) for c in self.columns)
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            staged: set[str] = conn.connection.info.setdefault("nh_staging_tables", set())
            if stage not in staged:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
                    f"SELECT {copied} FROM {self.table.name} WITH NO DATA"
                )
                staged.add(stage)
            # One read of the whole batch: a writer thread that came back for the GIL per 8 KiB chunk would
            # wait out the mapping thread's switch interval each time.
            text = io.StringIO("".join(self._rows.values()))
            cursor.copy_expert(f"COPY {stage} ({copied}) FROM STDIN", text, size=len(text.getvalue()) + 1)
            cursor.execute(
                f"INSERT INTO {self.table.name} ({listed}) SELECT {selected} FROM {stage} {self._upsert_tail()}",
                (self.synced_at,),
            )
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _executemany(self, conn: Connection) -> int:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        if not conn.connection.info.get("nh_content_hash"):
            register_content_hash(dbapi)  # type: ignore[arg-type]
            conn.connection.info["nh_content_hash"] = True
        cursor = dbapi.cursor()
        try:
            cursor.executemany(self.sqlite_statement(), self.parameters())
            return int(cursor.rowcount)
        finally:
            cursor.close()


def mark_missing_deleted(conn: Connection, table: Table, integration_id: int, seen: Iterable[str]) -> int:
    """After a complete full read: what the CRM no longer returns is marked deleted (agentOS)."""
    present = set(seen)
    stored = conn.execute(
        select(table.c.external_id).where(table.c.integration_id == integration_id, table.c.deleted.is_(False))
    ).scalars()
    gone = [external_id for external_id in stored if external_id not in present]
    for start in range(0, len(gone), 500):
        conn.execute(
            update(table)
            .where(table.c.integration_id == integration_id, table.c.external_id.in_(gone[start : start + 500]))
            .values(deleted=True, synced_at=utcnow())
        )
    return len(gone)
