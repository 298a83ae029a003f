"""`db.RetryingConnection`: a lost connection is retried on a fresh one within the budget; a wrong statement
is not retried; a database that stays away ends in `DatabaseUnavailable`, in words."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from nurturehub_pipelines.store import db


class Lost(Exception):
    """Stands in for the driver's error."""


def lost_connection() -> DBAPIError:
    return DBAPIError.instance(
        "SELECT 1", None, Lost("server closed the connection"), Lost, connection_invalidated=True
    )


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_a_lost_connection_is_retried_on_a_new_connection(db_url: str, no_sleep: list[float]) -> None:
    seen: list[Connection] = []

    def work(conn: Connection) -> int:
        seen.append(conn)
        if len(seen) < 3:
            raise lost_connection()
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    assert db.retrying(db.engine(), work) == 42
    assert len(seen) == 3 and len({id(c) for c in seen}) == 3  # a fresh connection each time
    assert no_sleep == [0.5, 1.0]  # backoff


def test_a_wrong_statement_is_not_retried(db_url: str, no_sleep: list[float]) -> None:
    calls: list[int] = []

    def work(conn: Connection) -> None:
        calls.append(1)
        raise IntegrityError("INSERT", None, Lost("duplicate key"))

    with pytest.raises(IntegrityError):
        db.retrying(db.engine(), work)
    assert calls == [1] and no_sleep == []


def test_a_database_that_stays_away_ends_in_words_within_the_budget(db_url: str) -> None:
    calls: list[float] = []

    def work(conn: Connection) -> None:
        calls.append(time.monotonic())
        raise lost_connection()

    with pytest.raises(db.DatabaseUnavailable) as down:
        db.RetryingConnection(db.engine(), budget=1.2).run(work)
    assert str(down.value) == "NurtureHub's database could not be reached for 1.2 s"
    assert len(calls) == 2 and calls[-1] - calls[0] < 1.2  # one backoff of 0.5 s; the next would overrun


def test_postgresql_operational_errors_are_transient_and_sqlite_ones_are_not(db_url: str) -> None:
    refused = OperationalError("connect", None, Lost("connection refused"))
    sqlite = db.engine("sqlite://").dialect
    assert not db.is_transient(refused, sqlite)
    assert db.is_transient(lost_connection(), sqlite)
    assert not db.is_transient(ValueError("no"), sqlite)
    from sqlalchemy.dialects import postgresql

    pg = postgresql.dialect()
    assert db.is_transient(refused, pg)
    assert not db.is_transient(IntegrityError("INSERT", None, Lost("duplicate")), pg)
