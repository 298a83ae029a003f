"""The settings every connection to a SQLite app database runs with (SQLAlchemy's and the sync's writer
process's alike): standard library only, so a process that needs just these imports nothing more."""

from __future__ import annotations

import sqlite3

# WAL lets the page read while a sync writes; busy_timeout rides out short write locks.
# synchronous=NORMAL: in WAL mode a commit no longer waits for fsync, and a power cut can only lose the
# newest commits, in order — a cursor is committed after its rows, so it never outlives them, and the next
# sync re-reads what was lost (an app crash loses nothing).
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON")


def apply_pragmas(conn: sqlite3.Connection) -> None:
    cur = conn.cursor()
    for pragma in PRAGMAS:
        cur.execute(f"PRAGMA {pragma}")
    cur.close()
