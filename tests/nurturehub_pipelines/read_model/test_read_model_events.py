"""The log: newest first, bounded, with DESIGN.md's event fields."""

from __future__ import annotations

from read_model_log import log
from sqlalchemy import Connection

from nurturehub_pipelines import read_model


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
