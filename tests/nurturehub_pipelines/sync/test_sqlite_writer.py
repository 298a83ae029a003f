"""SQLite's writer process: a sync into a SQLite file writes its batches from a process of its own, each
batch one transaction, and the process never outlives its sync or a failed batch's rollback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nurturehub_pipelines.sync import engine, sqlite_writer
from nurturehub_pipelines.sync.sqlite_writer import SqliteWriter, SqliteWriterError

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

INSERT = "INSERT INTO t (id, v) VALUES (?1, ?2)"


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "w.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return path


def rows_in(database: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()


def gone(pid: int, within: float = 10.0) -> bool:
    """The process has exited (a zombie awaiting its reaper counts: it runs no more)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def crm() -> str:
    return "openapi"


def test_a_sync_into_a_sqlite_file_writes_its_batches_from_another_process(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    if harness.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's writes are its server's already")
    writers: list[int] = []

    class Watched(SqliteWriter):
        def write(self, sql: str, rows: Any) -> int:
            written = super().write(sql, rows)
            assert self.pid is not None
            writers.append(self.pid)
            return written

    monkeypatch.setattr(engine, "SqliteWriter", Watched)
    monkeypatch.setattr(engine, "BATCH_ROWS", 100)
    monkeypatch.setattr(sqlite_writer, "MIN_ROWS", 50)
    harness.control.dataset("openapi", contacts=450, leads=10)

    result = harness.sync(full=True, page_size=50)

    assert result["contact_import"]["records_affected"] == 450
    assert harness.count("contacts") == 450
    assert len(writers) >= 5 and os.getpid() not in writers  # every batch, written by the child
    assert all(gone(pid) for pid in set(writers))  # and each stream's child ended with it


def test_an_incremental_sync_of_a_few_records_starts_no_writer_process(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    if harness.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's writes are its server's already")
    started: list[int | None] = []

    class Watched(SqliteWriter):
        def close(self) -> None:
            started.append(self.pid)
            super().close()

    harness.control.dataset("openapi", contacts=30, leads=10)
    harness.sync(full=True)
    monkeypatch.setattr(engine, "SqliteWriter", Watched)

    harness.control.touch("openapi", contacts=3)
    again = harness.sync()  # incremental: the scheduled kind, a few records read

    assert again["contact_import"]["records_affected"] == 3
    assert started == [None, None]  # one writer per stream, neither started: written by the sync itself


def test_a_failed_batch_is_rolled_back_whole_and_said_in_the_error(database: str) -> None:
    with SqliteWriter(database) as writer:
        assert writer.write(INSERT, [(1, "a"), (2, "b")]) == 2
        with pytest.raises(SqliteWriterError, match="IntegrityError.*NOT NULL"):
            writer.write(INSERT, [(3, "c"), (4, None)])
        assert writer.write(INSERT, [(5, "e")]) == 1  # the writer carries on after a refused batch

    assert rows_in(database) == [(1, "a"), (2, "b"), (5, "e")]  # nothing of the refused batch


def test_ctrl_c_to_the_process_group_leaves_the_writer_to_its_parent(database: str) -> None:
    with SqliteWriter(database) as writer:
        writer.write(INSERT, [(1, "a")])
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGINT)
        assert writer.write(INSERT, [(2, "b")]) == 1

    assert rows_in(database) == [(1, "a"), (2, "b")]


def test_the_writer_exits_when_its_sync_is_killed_and_keeps_what_it_committed(database: str) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from nurturehub_pipelines.sync.sqlite_writer import SqliteWriter
        writer = SqliteWriter({database!r})
        writer.write({INSERT!r}, [(1, "a")])
        print(writer.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert killed.returncode == -signal.SIGKILL
    assert gone(int(killed.stdout.strip()))
    assert rows_in(database) == [(1, "a")]
