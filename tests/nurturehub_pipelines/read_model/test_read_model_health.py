"""The badge and its reason (DESIGN.md, Health), staleness told in London time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from read_model_log import NOW, card, log
from sqlalchemy import Connection

from nurturehub_pipelines.store.sync_log import write_event


def test_never_synced_is_pending(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_requested", "success", 1, message="Sync Now requested by owner@harbour.example")
    result = card(conn, iid)
    assert (result.health, result.health_reason, result.last_synced_at) == ("pending", "Not synced yet", None)
    assert result.consecutive_failures == 0 and result.recent_errors == ()
    assert result.to_json()["name"] == result.to_json()["crm_name"] == "Reapit"


def test_green_amber_red_follow_the_latest_finished_sync(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 3)
    green = card(conn, iid)
    assert (green.health, green.health_reason) == ("green", None)
    assert green.last_synced_at == NOW - timedelta(hours=3)

    log(conn, iid, "sync_finished", "warning", 2, message="4 contacts skipped: no email or phone", records_skipped=4)
    amber = card(conn, iid)
    assert (amber.health, amber.health_reason) == ("amber", "4 contacts skipped: no email or phone")
    assert amber.last_synced_at == NOW - timedelta(hours=2)

    failure = "Reapit rejected NurtureHub's credentials — reconnect Reapit in your CRM settings"
    log(conn, iid, "auth_refresh", "error", 1, message=failure, run_id="r1")
    log(conn, iid, "sync_finished", "error", 1, message=failure, run_id="r1")
    red = card(conn, iid)
    assert (red.health, red.health_reason) == ("red", failure)
    assert red.last_synced_at == NOW - timedelta(hours=2)  # the last *completed* sync
    assert red.consecutive_failures == 1


def test_rows_written_outside_a_run_count(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 1, run_id=None, trigger="manual")
    assert card(conn, iid).health == "green"


def test_no_completed_sync_for_8_hours_is_red_and_says_since_when(conn: Connection, iid: int) -> None:
    log(conn, iid, "sync_finished", "success", 9)  # 03:00
    stale = card(conn, iid)
    assert (stale.health, stale.health_reason) == ("red", "No sync has completed since 03:00")
    assert stale.last_synced_at == NOW - timedelta(hours=9)
    assert card(conn, iid, NOW - timedelta(hours=1, seconds=1)).health == "green"  # 7 h 59 min 59 s
    yesterday = card(conn, iid, NOW + timedelta(days=1))
    assert yesterday.health_reason == "No sync has completed since 03:00 on 3 March"


def test_staleness_is_told_in_london_time(conn: Connection, iid: int) -> None:
    summer = datetime(2026, 7, 1, 20, 0, tzinfo=UTC)
    write_event(
        conn, integration_id=iid, event_type="sync_finished", outcome="warning", message="", trigger="schedule",
        occurred_at=summer - timedelta(hours=10), records_skipped=2,
    )  # fmt: skip
    assert card(conn, iid, summer).health_reason == "No sync has completed since 11:00"  # 10:00 UTC is 11:00 BST
