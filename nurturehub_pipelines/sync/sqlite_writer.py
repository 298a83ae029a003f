"""SQLite's batch writes in a process of their own, so the database's work runs on the other core.

On PostgreSQL the database's work is another process's by nature, and a sync maps batch N+1 while the
server writes batch N (`write_behind`). SQLite's work runs in the process that calls it, and CPython's
`executemany` hands the GIL back for every row, so a writer *thread* only traded the GIL with the mapping
thread (bench/README.md). A child process has its own GIL: the sync sends it a batch's parameter rows
(pickled, over a socket pair) and the child runs the same upsert in one transaction, commits, and answers
with the rows written. Nothing about the guarantees changes: one batch at a time, in order, each batch
one transaction; the cursor is written by the sync after the child has answered for every batch. A child
whose parent vanished reads end-of-file and exits; a transaction it had not committed is rolled back by
SQLite, and one it had committed is idempotent.

The child imports only the standard library and `canonical` (no SQLAlchemy, no Dagster): it starts in
tens of milliseconds, at the first batch, while the next one is mapped.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from nurturehub_pipelines.store.sqlite_pragmas import apply_pragmas
from nurturehub_pipelines.sync.canonical import digest

if TYPE_CHECKING:
    from sqlalchemy import Engine

# Starting the child costs ~70 ms of CPU: a batch smaller than this is cheaper written by the sync itself,
# so an incremental sync of a few changed records (the scheduled kind) starts no process.
MIN_ROWS = 1_000
# `content_hash` computed by the database from the `raw` it stores, as PostgreSQL computes it (upsert.py).
HASH_FUNCTION = "nh_content_hash"


def _content_hash(raw: str) -> str:
    # Canonical JSON is ASCII: its text's bytes are the bytes `canonical.digest` hashes.
    return digest(raw.encode())


def register_content_hash(conn: sqlite3.Connection) -> None:
    conn.create_function(HASH_FUNCTION, 1, _content_hash, deterministic=True)


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (None for PostgreSQL, or a SQLite that lives in memory)."""
    url = engine.url
    if engine.dialect.name != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return None if url.query.get("mode") == "memory" else url.database


class SqliteWriterError(RuntimeError):
    """The writer process failed a batch (its words), or stopped answering."""


class SqliteWriter:
    """The sync's side: `write(sql, rows)` blocks until the child has committed them; `close` stops it.

    The child starts at the first write, in the write-behind thread while the next batch is mapped."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), self.database],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        return self._conn

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        channel = self._conn or self._start()
        try:
            channel.send((sql, rows))
            answer = channel.recv()
        except (EOFError, OSError) as lost:
            code = self._process.poll() if self._process is not None else None
            raise SqliteWriterError(f"the SQLite writer process stopped (exit code {code})") from lost
        if answer[0] == "error":
            raise SqliteWriterError(answer[1])
        return int(answer[1])

    def close(self) -> None:
        """End-of-file tells the child to exit; it has nothing uncommitted once every write has answered."""
        if self._conn is None or self._process is None:
            return
        self._conn.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> SqliteWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(fd: int, database: str) -> None:
    """The child: one transaction per batch received, answered with its row count (or the error's words)."""
    # Ctrl-C (or a run's termination) reaches the whole process group: the parent decides, and this
    # process finishes the batch in hand and exits when the parent closes the channel or is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Connection(fd)
    db = sqlite3.connect(database, timeout=30, isolation_level=None)
    apply_pragmas(db)
    register_content_hash(db)
    while True:
        try:
            sql, rows = channel.recv()
        except EOFError:
            break
        try:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.executemany(sql, rows)
            db.execute("COMMIT")
        except sqlite3.Error as failed:
            if db.in_transaction:
                db.execute("ROLLBACK")
            answer: tuple[str, Any] = ("error", f"{type(failed).__name__}: {failed}")
        else:
            answer = ("ok", cursor.rowcount)
        try:
            channel.send(answer)
        except OSError:  # the parent is gone: what was committed stays (idempotent), nothing is pending
            break
    db.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
