"""The log: newest first, bounded, with DESIGN.md's event fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from read_model_log import log
from sqlalchemy import Connection

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model.events import LogEvent, iso


def test_log_is_newest_first_and_bounded(conn: Connection, iid: int) -> None:
    for minute in range(120):
        log(conn, iid, "contact_import", "success", (120 - minute) / 60, records_affected=minute)
    events = read_model.log_events(conn, iid, 500)
    assert len(events) == 100
    assert [e.records_affected for e in events[:3]] == [119, 118, 117]
    assert set(events[0].to_json()) == {
        "id", "occurred_at", "event_type", "records_affected", "records_skipped", "outcome", "message", "run_id",
        "trigger",
    }  # fmt: skip


def test_iso_writes_each_time_as_its_own_text_even_for_the_same_instant_in_another_zone() -> None:
    """`iso` remembers the last time it wrote by identity: an equal instant in another zone, or another
    time, must still be written as itself."""
    moment = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    elsewhere = moment.astimezone(timezone(timedelta(hours=1)))
    later = moment + timedelta(seconds=1)
    for value in (moment, moment, elsewhere, moment, later, later, None, moment):
        assert iso(value) == (value.isoformat() if value else None)


def test_an_events_written_time_is_its_isoformat_in_both_json_forms() -> None:
    event = LogEvent(7, datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "contact_import", 3, 1, "error", "m", None, "retry")
    assert event.to_json()["occurred_at"] == "2026-03-29T01:30:00+00:00"
    assert event.to_error_json() == {
        "log_id": 7,
        "occurred_at": "2026-03-29T01:30:00+00:00",
        "event_type": "contact_import",
        "message": "m",
    }
