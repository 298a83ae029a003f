"""consecutive_failures: failed syncs since the last completed one, in log order."""

from __future__ import annotations

from read_model_log import card, log
from sqlalchemy import Connection

from nurturehub_pipelines import read_model


def test_consecutive_failures_count_only_failed_syncs_since_the_last_completed_one(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "error", 10)
    log(conn, iid, "sync_finished", "success", 9)
    for hours in (7, 5, 3):
        log(conn, iid, "sync_finished", "error", hours)
    log(conn, iid, "sync_requested", "error", 2, message="Sync Now refused: Reapit rate limit")  # not a sync
    log(conn, iid, "contact_import", "error", 3)  # a step, not a sync
    assert card(conn, iid).consecutive_failures == 3
    log(conn, iid, "sync_finished", "warning", 1)
    assert card(conn, iid).consecutive_failures == 0


def test_ties_on_time_are_broken_by_id(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 1)
    log(conn, iid, "sync_finished", "error", 1, message="later row, same instant")
    same = card(conn, iid)
    assert (same.health, same.consecutive_failures) == ("red", 1)
    assert [e.message for e in read_model.log_events(conn, iid, 2)] == [
        "later row, same instant",
        "sync_finished success",
    ]
