"""Which integrations have new `sync_finished` rows: the alert sensor's progress through the log.

The progress is a `Watermark`, kept in the sensor's Dagster cursor and passed in and out here, so an
evaluation is a pure function of (log, watermark) that tests and benches call without Dagster. A
watermark names the log row it stands on (`low`, `low_at`): pointed at a recreated or emptied app
database it no longer matches, and the evaluation starts afresh instead of skipping the new log's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from nurturehub_pipelines.alerts.outbox import Evaluation, evaluate
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, utcnow

# Rows with ids above the watermark are re-read for this long: on PostgreSQL a row can become visible
# after a row with a higher id, so the watermark only passes ids that have been visible for a minute.
WATERMARK_LAG = timedelta(seconds=60)
# On a first evaluation, only streaks that ended within this window still raise their alerts.
FIRST_RUN_WINDOW = timedelta(hours=1)
CHUNK = 500  # integrations per evaluation query


@dataclass(frozen=True)
class Watermark:
    """Every row up to `low` is evaluated; `marks` are (when first seen as the newest, id) still lagging."""

    low: int
    low_at: float | None = None  # row `low`'s `occurred_at` (a timestamp): which log this watermark is on
    marks: tuple[tuple[float, int], ...] = ()

    def dumps(self) -> str:
        return json.dumps({"low": self.low, "low_at": self.low_at, "marks": [list(mark) for mark in self.marks]})

    @classmethod
    def loads(cls, cursor: str | None) -> Watermark | None:
        """The watermark a cursor holds; None for no cursor, or one this version cannot read."""
        try:
            value = json.loads(cursor) if cursor else None
            if value is None:
                return None
            low_at = value.get("low_at")
            marks = tuple((float(at), int(i)) for at, i in value["marks"])
            return cls(int(value["low"]), None if low_at is None else float(low_at), marks)
        except (ValueError, KeyError, TypeError):
            return None


def _row_at(conn: Connection, log_id: int) -> float | None:
    occurred = conn.execute(select(crm_sync_log.c.occurred_at).where(crm_sync_log.c.id == log_id)).scalar()
    return occurred.timestamp() if occurred else None


def _belongs(conn: Connection, state: Watermark | None) -> bool:
    """The watermark was made on this log: its row is still there, with the same time."""
    return state is not None and (state.low == 0 or _row_at(conn, state.low) == state.low_at)


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _moved(conn: Connection, state: Watermark, max_id: int, now: datetime) -> Watermark:
    """The watermark after this evaluation: `max_id` joins the marks, and marks older than the lag pass."""
    marks = list(state.marks)
    if max_id > (marks[-1][1] if marks else state.low):
        marks.append((now.timestamp(), max_id))
    low = state.low
    while marks and marks[0][0] <= (now - WATERMARK_LAG).timestamp():
        low = max(low, marks.pop(0)[1])
    if low == state.low:
        return Watermark(low, state.low_at, tuple(marks))
    return Watermark(low, _row_at(conn, low), tuple(marks))


def evaluate_new_rows(
    engine: Engine, settings: AlertSettings, state: Watermark | None, now: datetime | None = None
) -> tuple[Evaluation, Watermark]:
    """Evaluate every integration with `sync_finished` rows above the watermark; return the moved watermark.

    The first evaluation of a log (no watermark, or one made on another log) looks at every integration's
    current streak, and at streaks that ended in the last hour, so an existing deployment's history does
    not flood its owners.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        max_id = conn.execute(select(func.max(crm_sync_log.c.id))).scalar() or 0
        if state is None or not _belongs(conn, state):
            fresh_after = (
                conn.execute(
                    select(func.max(crm_sync_log.c.id)).where(crm_sync_log.c.occurred_at < now - FIRST_RUN_WINDOW)
                ).scalar()
                or 0
            )
            state = Watermark(fresh_after, _row_at(conn, fresh_after))
            candidates = list(conn.execute(select(integrations.c.id).order_by(integrations.c.id)).scalars())
        else:
            fresh_after = state.low
            candidates = list(
                conn.execute(
                    select(crm_sync_log.c.integration_id)
                    .where(crm_sync_log.c.id > fresh_after, crm_sync_log.c.event_type == "sync_finished")
                    .distinct()
                ).scalars()
            )
    total = Evaluation()
    for chunk in _chunks(sorted(candidates)):
        with engine.begin() as conn:
            total += evaluate(conn, chunk, settings, fresh_after)
    with engine.connect() as conn:
        return total, _moved(conn, state, max_id, now)
