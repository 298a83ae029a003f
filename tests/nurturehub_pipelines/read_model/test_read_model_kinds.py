"""recent_errors: the newest failed syncs and refused requests."""

from __future__ import annotations

from datetime import timedelta

from read_model_log import NOW, card, log
from sqlalchemy import Connection


def test_recent_errors_are_the_5_newest_failed_syncs_and_refusals(conn: Connection, iid: int) -> None:
    ids = [
        log(conn, iid, "sync_finished", "error", 8, message="oldest"),
        log(conn, iid, "sync_requested", "error", 7, message="refused 1"),
        log(conn, iid, "sync_finished", "error", 6, message="failed 2"),
        log(conn, iid, "sync_requested", "error", 5, message="refused 2"),
        log(conn, iid, "sync_finished", "error", 4, message="failed 3"),
        log(conn, iid, "sync_finished", "error", 3, message="newest"),
    ]
    log(conn, iid, "lead_update", "error", 2, message="a step error is not listed")
    log(conn, iid, "sync_finished", "success", 1)
    errors = card(conn, iid).to_json()["recent_errors"]
    assert [e["log_id"] for e in errors] == ids[:0:-1]
    assert errors[0] == {
        "log_id": ids[-1],
        "occurred_at": (NOW - timedelta(hours=3)).isoformat(),
        "event_type": "sync_finished",
        "message": "newest",
    }
