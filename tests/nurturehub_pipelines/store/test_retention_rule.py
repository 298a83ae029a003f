"""The retention rule on crafted log histories: what goes, what stays, and that no card or /log answer changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store import accounts, db, retention
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import crm_sync_log

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
STEPS = ("auth_refresh", "contact_import", "lead_update")


def sync(conn: Connection, iid: int, days_ago: float, outcome: str = "success") -> list[int]:
    """One scheduled sync's four rows, a minute apart, ending `days_ago` days before NOW."""
    at = NOW - timedelta(days=days_ago)
    ids = [
        write_event(conn, integration_id=iid, event_type=step, outcome="success" if outcome != "error" or n < 2
                    else "error", message=f"{step} {n}", trigger="schedule", run_id=f"run-{iid}-{days_ago}",
                    occurred_at=at - timedelta(minutes=3 - n))
        for n, step in enumerate(STEPS)
    ]  # fmt: skip
    ids.append(
        write_event(conn, integration_id=iid, event_type="sync_finished", outcome=outcome, trigger="schedule",
                    message=f"Sync finished ({outcome})", run_id=f"run-{iid}-{days_ago}", occurred_at=at)
    )  # fmt: skip
    return ids


def log_ids(conn: Connection, iid: int) -> list[int]:
    rows = conn.execute(
        select(crm_sync_log.c.id).where(crm_sync_log.c.integration_id == iid).order_by(crm_sync_log.c.id)
    )
    return list(rows.scalars())


def answers(conn: Connection, org: int, iids: list[int]) -> tuple[Any, Any]:
    """Every card of the organisation and every integration's /log answer, as JSON."""
    cards = [card.to_json() for card in read_model.cards(conn, org, NOW)]
    logs = {iid: [event.to_json() for event in read_model.log_events(conn, iid, 100)] for iid in iids}
    return cards, logs


@pytest.fixture
def engine(db_url: str) -> Engine:
    return db.engine(db_url)


@pytest.fixture
def org(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")["org_id"])


def integration(engine: Engine, org: int, name: str) -> int:
    with engine.begin() as conn:
        return accounts.add_integration(conn, org, "reapit", name, {"customer_id": "HBR"}, {})


@pytest.mark.parametrize("batch", [retention.BATCH, 7])
def test_old_rows_beyond_the_newest_100_go_and_the_newest_100_stay_even_when_old(
    engine: Engine, org: int, batch: int
) -> None:
    iid = integration(engine, org, "Old only")
    with engine.begin() as conn:
        written = [row for day in range(60) for row in sync(conn, iid, 300 - day)]  # 240 rows, all > 90 days old
        before = answers(conn, org, [iid])

    pruned = retention.prune(engine, 90, now=NOW, batch=batch)

    with engine.connect() as conn:
        assert log_ids(conn, iid) == written[-100:]
        assert answers(conn, org, [iid]) == before
    assert pruned.deleted["crm_sync_log"] == 140
    assert pruned.batches >= (140 // batch if batch < 140 else 1)


def test_rows_from_the_newest_completed_sync_onward_stay_even_when_old_and_beyond_100(engine: Engine, org: int) -> None:
    iid = integration(engine, org, "Long streak")
    with engine.begin() as conn:
        early = [row for day in range(10) for row in sync(conn, iid, 300 - day)]  # completed syncs
        streak = [row for day in range(40) for row in sync(conn, iid, 200 - day, "error")]  # 160 rows, old
        before = answers(conn, org, [iid])

    pruned = retention.prune(engine, 90, now=NOW, batch=10)

    with engine.connect() as conn:
        assert log_ids(conn, iid) == early[-1:] + streak  # the newest completed sync_finished onward
        assert answers(conn, org, [iid]) == before
        assert before[0][0]["consecutive_failures"] == 40
    assert pruned.deleted["crm_sync_log"] == 39


def test_an_integration_that_never_completed_keeps_its_newest_100_and_its_failed_syncs(
    engine: Engine, org: int
) -> None:
    iid = integration(engine, org, "Never worked")
    with engine.begin() as conn:
        rows = [row for day in range(50) for row in sync(conn, iid, 300 - day, "error")]
        before = answers(conn, org, [iid])

    retention.prune(engine, 90, now=NOW)

    with engine.connect() as conn:
        failed = rows[3::4]  # every sync_finished/error: its streak, counted and alerted from the first
        assert log_ids(conn, iid) == sorted(set(rows[-100:]) | set(failed))
        assert answers(conn, org, [iid]) == before
        assert before[0][0]["consecutive_failures"] == 50


def test_rows_inside_the_window_stay_whatever_their_number(engine: Engine, org: int) -> None:
    iid = integration(engine, org, "Busy")
    with engine.begin() as conn:
        rows = [row for n in range(80) for row in sync(conn, iid, 89 - n)]  # 320 rows, 89 days old at most
    assert retention.prune(engine, 90, now=NOW).deleted["crm_sync_log"] == 0
    with engine.connect() as conn:
        assert log_ids(conn, iid) == rows


def test_an_old_error_a_card_still_shows_stays_and_the_rest_goes(engine: Engine, org: int) -> None:
    iid = integration(engine, org, "Recovered long ago")
    with engine.begin() as conn:
        oldest = sync(conn, iid, 400)
        old_error = sync(conn, iid, 300, "error")
        refused = write_event(
            conn,
            integration_id=iid,
            event_type="sync_requested",
            outcome="error",
            message="Reapit rate limit",
            trigger="sync_now",
            occurred_at=NOW - timedelta(days=250),
        )
        rest = [row for day in range(60) for row in sync(conn, iid, 200 - day)]
        before = answers(conn, org, [iid])
    assert [e["log_id"] for e in before[0][0]["recent_errors"]] == [refused, old_error[3]]

    retention.prune(engine, 90, now=NOW)

    with engine.connect() as conn:
        assert log_ids(conn, iid) == [old_error[3], refused, *rest[-100:]]
        assert answers(conn, org, [iid]) == before
    assert oldest  # went with the rest


def test_a_streak_ended_within_a_day_keeps_its_rows_until_the_alert_sensor_has_read_it(
    engine: Engine, org: int
) -> None:
    iid = integration(engine, org, "Just recovered")
    with engine.begin() as conn:
        first = sync(conn, iid, 400)
        streak = [row for day in range(40) for row in sync(conn, iid, 300 - day, "error")]
        ended = sync(conn, iid, 0.01)  # a quarter of an hour ago
        before = answers(conn, org, [iid])

    retention.prune(engine, 90, now=NOW)
    with engine.connect() as conn:
        assert log_ids(conn, iid) == first[-1:] + streak + ended
        assert answers(conn, org, [iid]) == before

    retention.prune(engine, 90, now=NOW + timedelta(days=2))  # the next days' prune: the streak's time is up
    with engine.connect() as conn:
        assert log_ids(conn, iid) == (streak + ended)[-100:]


def test_many_integrations_each_by_its_own_rule_and_no_card_or_log_changes(engine: Engine, org: int) -> None:
    iids = [integration(engine, org, f"Branch {n}") for n in range(6)]
    with engine.begin() as conn:
        for n, iid in enumerate(iids):
            for day in range(45):
                sync(conn, iid, 200 - day * 3, "error" if (day + n) % (n + 2) == 0 or day > 40 + n else "success")
        conn.execute(insert(crm_sync_log), [  # a removed integration's leftovers: no card, the plain rule
            {"integration_id": 999, "trigger": "manual", "event_type": "contact_import", "outcome": "success",
             "message": "x", "occurred_at": NOW - timedelta(days=365, minutes=n)} for n in range(150)
        ])  # fmt: skip
        before = answers(conn, org, iids)
        total = conn.execute(select(func.count()).select_from(crm_sync_log)).scalar_one()

    pruned = retention.prune(engine, 90, now=NOW, batch=11)

    with engine.connect() as conn:
        assert answers(conn, org, iids) == before
        left = conn.execute(select(func.count()).select_from(crm_sync_log)).scalar_one()
        assert len(log_ids(conn, 999)) == 100
    assert pruned.deleted["crm_sync_log"] == total - left > 0
    assert pruned.integrations == 7


@pytest.mark.parametrize("days", [0, -1, True, "abc", 1.5])
def test_the_window_must_be_a_positive_whole_number_of_days(engine: Engine, days: Any) -> None:
    with pytest.raises(ValueError, match="positive whole number of days"):
        retention.prune(engine, days, now=NOW)
