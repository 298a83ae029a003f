"""The SQLite batch's own bind processors write exactly what SQLAlchemy's would, for every time and flag."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from nurturehub_pipelines.store.tables import contacts, leads
from nurturehub_pipelines.sync.upsert import sqlite_bind

DIALECT = sqlite.dialect()


def sqlalchemy_bind(column: str) -> Callable[[Any], Any]:
    processor = contacts.c[column].type.dialect_impl(DIALECT).bind_processor(DIALECT)
    assert processor is not None
    return processor


def random_times(count: int) -> list[datetime]:
    rng = random.Random(12)
    zones = [UTC, None, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    times = []
    for _ in range(count):
        moment = datetime(1, 1, 2, tzinfo=UTC) + timedelta(seconds=rng.random() * 3e11)
        moment = moment.replace(microsecond=rng.choice([0, rng.randrange(1_000_000)]))
        zone = rng.choice(zones)
        times.append(moment.replace(tzinfo=None) if zone is None else moment.astimezone(zone))
    return times


@pytest.mark.parametrize("column", ["source_updated_at", "synced_at"])
def test_times_are_written_as_sqlalchemy_writes_them(column: str) -> None:
    ours, theirs = sqlite_bind(contacts.c[column].type, DIALECT), sqlalchemy_bind(column)
    assert ours is not None
    edge = [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(999, 1, 1, tzinfo=UTC), datetime(2026, 1, 1)]
    for moment in [*edge, *random_times(5_000)]:
        assert ours(moment) == theirs(moment), moment


def test_flags_are_written_as_sqlalchemy_writes_them() -> None:
    ours, theirs = sqlite_bind(leads.c.deleted.type, DIALECT), sqlalchemy_bind("deleted")
    assert ours is not None
    for flag in (True, False):
        assert ours(flag) == theirs(flag)
        assert type(ours(flag)) is type(theirs(flag))


def test_text_columns_are_left_as_they_are() -> None:
    assert sqlite_bind(contacts.c.email.type, DIALECT) is None
