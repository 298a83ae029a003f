"""sync_in_progress: a request that still stands, or a run writing rows."""

from __future__ import annotations

from datetime import timedelta

from read_model_log import NOW, card, log
from sqlalchemy import Connection

from nurturehub_pipelines.store import sync_requests


def test_sync_in_progress_follows_the_request_and_its_run(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 2)
    assert not card(conn, iid).sync_in_progress
    request_id = sync_requests.create(conn, iid, "sync_now", "owner@harbour.example", NOW)
    assert card(conn, iid).sync_in_progress  # requested
    sync_requests.mark_launched(conn, request_id, NOW)
    assert card(conn, iid).sync_in_progress  # queued: no run id known yet
    sync_requests.set_run_id(conn, request_id, "run-a")
    log(conn, iid, "auth_refresh", "success", 0, run_id="run-a", trigger="sync_now")
    running = card(conn, iid)
    assert running.sync_in_progress and running.health == "green"  # syncing does not change the badge
    log(conn, iid, "sync_finished", "success", 0, run_id="run-a", trigger="sync_now")
    assert not card(conn, iid).sync_in_progress  # before the sensor even closes the request
    assert sync_requests.settle(conn, iid, NOW) is None
    assert sync_requests.active_request(conn, iid) is None


def test_a_scheduled_run_writing_rows_is_in_progress(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 4, run_id="run-1")
    log(conn, iid, "auth_refresh", "success", 0.1, run_id="run-2")
    log(conn, iid, "sync_requested", "error", 0, message="Sync Now refused: Reapit rate limit")
    assert card(conn, iid).sync_in_progress
    log(conn, iid, "sync_finished", "error", 0, run_id="run-2")
    assert not card(conn, iid).sync_in_progress
    log(conn, iid, "contact_import", "success", 7, run_id="run-0")  # a dead run, outside the window
    assert not card(conn, iid, NOW).sync_in_progress


def test_requests_stop_counting_once_expired(conn: Connection, iid: int) -> None:
    sync_requests.create(conn, iid, "sync_now", "owner@harbour.example", NOW - timedelta(hours=25))
    assert not card(conn, iid).sync_in_progress
    assert sync_requests.settle(conn, iid, NOW) is None  # expired, so a new request may be made
