"""The triggers' summary (0007): an organisation's cards equal the seek-by-seek cards whatever writes the log.

Rows are written, deleted and updated with plain SQL, as a person or another service would, out of order
and with ties in `occurred_at`; after each change the cards read from `crm_sync_summary` must equal
`read_model.card`'s (the log's own index seeks), and the summary must equal a rebuild from the log.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from read_model_log import NOW, log
from sqlalchemy import Connection, Engine, event, inspect, text

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store import accounts, db, retention, sync_summary
from tests.support.migrations import migrate

EVENTS = [
    ("sync_finished", "success"),
    ("sync_finished", "warning"),
    ("sync_finished", "error"),
    ("sync_finished", "error"),
    ("sync_requested", "error"),
    ("sync_requested", "success"),
    ("contact_import", "success"),
    ("auth_refresh", "error"),
]
READ_TIMES = (NOW, NOW + timedelta(hours=7), NOW - timedelta(hours=30))


def stamp(conn: Connection, moment: datetime) -> str:
    """`occurred_at` as an outside writer sends it (DESIGN.md: SQLite stores SQLAlchemy's DateTime text)."""
    if conn.dialect.name == "sqlite":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.isoformat()


COLUMNS = (
    "integration_id, run_id, trigger, event_type, outcome, records_affected, records_skipped, message, occurred_at"
)


def write_many(conn: Connection, rows: list[tuple[int, str, str, datetime, str | None]]) -> list[int]:
    """One INSERT statement of several rows, as a bulk writer sends them: (integration, type, outcome, time, run)."""
    values, params = [], {}
    for n, (iid, event_type, outcome, moment, run_id) in enumerate(rows):
        values.append(f"(:i{n}, :run{n}, 'manual', :e{n}, :o{n}, 3, 1, :m{n}, :at{n})")
        params.update({f"i{n}": iid, f"run{n}": run_id, f"e{n}": event_type, f"o{n}": outcome})
        params.update({f"m{n}": f"{event_type} {outcome}", f"at{n}": stamp(conn, moment)})
    statement = f"INSERT INTO crm_sync_log ({COLUMNS}) VALUES {', '.join(values)} RETURNING id"
    return list(conn.execute(text(statement), params).scalars())


def write(conn: Connection, iid: int, event_type: str, outcome: str, moment: datetime, run_id: str | None) -> int:
    return write_many(conn, [(iid, event_type, outcome, moment, run_id)])[0]


def snapshot(conn: Connection) -> tuple[list[Any], list[Any]]:
    streaks = conn.execute(text("SELECT * FROM crm_sync_summary ORDER BY integration_id")).all()
    rows = conn.execute(text("SELECT * FROM crm_sync_summary_rows ORDER BY integration_id, tag, log_id")).all()
    return [tuple(row) for row in streaks], [tuple(row) for row in rows]


def assert_cards_match(conn: Connection, org: int) -> None:
    """The summary's cards are the seeks' cards, at several read times; the summary is a rebuild's."""
    for now in READ_TIMES:
        reference = [read_model.card(conn, ref, now).to_json() for ref in read_model.integration_refs(conn, org)]
        assert [card.to_json() for card in read_model.cards(conn, org, now)] == reference
    kept = snapshot(conn)
    savepoint = conn.begin_nested()
    sync_summary.rebuild(conn)
    assert snapshot(conn) == kept
    savepoint.rollback()


def org_of(conn: Connection, size: int, name: str = "Harbour") -> tuple[int, list[int]]:
    org = accounts.create_org(conn, name, f"owner@{name.lower()}.example")["org_id"]
    ids = [
        accounts.add_integration(conn, org, "reapit", f"Office {n}", {"customer_id": f"H{n}"}, {}) for n in range(size)
    ]
    return org, ids


def test_any_mix_of_outside_inserts_deletes_and_updates_keeps_the_cards_right(conn: Connection) -> None:
    """Random writes from outside: out of order, tied times, deleting the newest, moving rows between
    integrations; every card equals the one the log's seeks give."""
    rng = random.Random(12)
    org, ids = org_of(conn, 3)
    moments = [NOW - timedelta(hours=h / 2) for h in range(0, 40)]  # 20 h of half hours: many ties
    live: list[int] = []
    for step in range(160):
        choice = rng.random()
        if choice < 0.65 or not live:  # one row a statement, or several (of one or more integrations)
            batch = []
            for n in range(1 if rng.random() < 0.7 else rng.randint(2, 6)):
                event_type, outcome = rng.choice(EVENTS)
                run_id = None if event_type == "sync_requested" or rng.random() < 0.3 else f"run-{step}-{n}"
                batch.append((rng.choice(ids), event_type, outcome, rng.choice(moments), run_id))
            live.extend(write_many(conn, batch))
        elif choice < 0.8:  # delete the newest row of an integration, or any row
            if rng.random() < 0.5:
                victim = conn.execute(
                    text("SELECT id FROM crm_sync_log WHERE integration_id = :i ORDER BY occurred_at DESC, id DESC"),
                    {"i": rng.choice(ids)},
                ).first()
                victim_id = victim[0] if victim else rng.choice(live)
            else:
                victim_id = rng.choice(live)
            conn.execute(text("DELETE FROM crm_sync_log WHERE id = :id"), {"id": victim_id})
            live.remove(victim_id)
        elif choice < 0.9:  # an outside correction: another outcome, another time
            event_type, outcome = rng.choice(EVENTS)
            conn.execute(
                text("UPDATE crm_sync_log SET event_type = :e, outcome = :o, occurred_at = :at WHERE id = :id"),
                {"e": event_type, "o": outcome, "at": stamp(conn, rng.choice(moments)), "id": rng.choice(live)},
            )
        else:  # a row moved to another integration
            conn.execute(
                text("UPDATE crm_sync_log SET integration_id = :i WHERE id = :id"),
                {"i": rng.choice(ids), "id": rng.choice(live)},
            )
        if step % 4 == 0:
            assert_cards_match(conn, org)
    assert_cards_match(conn, org)
    cards = read_model.cards(conn, org, NOW)
    assert {card.health for card in cards} - {"pending"}, cards  # the walk reached real cards


def test_deleting_the_newest_rows_falls_back_to_the_ones_before(conn: Connection) -> None:
    org, (iid,) = org_of(conn, 1)
    first = write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=5), "r1")
    failures = [write(conn, iid, "sync_finished", "error", NOW - timedelta(hours=h), f"r{h}") for h in (4, 3, 2)]
    completed = write(conn, iid, "sync_finished", "warning", NOW - timedelta(hours=1), "r9")
    card = read_model.cards(conn, org, NOW)[0]
    assert (card.health, card.consecutive_failures, card.last_synced_at) == ("amber", 0, NOW - timedelta(hours=1))
    conn.execute(text("DELETE FROM crm_sync_log WHERE id = :id"), {"id": completed})
    card = read_model.cards(conn, org, NOW)[0]
    assert (card.health, card.consecutive_failures, card.last_synced_at) == ("red", 3, NOW - timedelta(hours=5))
    assert [error.id for error in card.recent_errors] == failures[::-1]
    conn.execute(text("DELETE FROM crm_sync_log WHERE id IN (:a, :b)"), {"a": failures[-1], "b": first})
    card = read_model.cards(conn, org, NOW)[0]
    assert (card.consecutive_failures, card.last_synced_at, len(card.recent_errors)) == (2, None, 2)
    conn.execute(text("DELETE FROM crm_sync_log WHERE integration_id = :i"), {"i": iid})  # integration remove
    assert read_model.cards(conn, org, NOW)[0].health == "pending"
    assert snapshot(conn) == ([], [])
    assert_cards_match(conn, org)
    if conn.dialect.name == "postgresql":  # TRUNCATE fires no DELETE trigger: its own one empties the summary
        write(conn, iid, "sync_finished", "error", NOW, "r10")
        conn.execute(text("TRUNCATE crm_sync_log"))
        assert snapshot(conn) == ([], [])


def test_a_row_written_out_of_order_takes_its_place_in_log_order(conn: Connection) -> None:
    org, (iid,) = org_of(conn, 1)
    write(conn, iid, "sync_finished", "error", NOW - timedelta(hours=1), "r1")
    write(conn, iid, "sync_finished", "error", NOW - timedelta(hours=3), "r2")
    assert read_model.cards(conn, org, NOW)[0].consecutive_failures == 2
    write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=2), None)  # between the two failures
    card = read_model.cards(conn, org, NOW)[0]
    assert (card.health, card.consecutive_failures, card.last_synced_at) == ("red", 1, NOW - timedelta(hours=2))
    write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=9), None)  # older: changes nothing
    assert read_model.cards(conn, org, NOW)[0].consecutive_failures == 1
    tied = write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=1), None)  # same instant, later id
    card = read_model.cards(conn, org, NOW)[0]
    assert (card.health, card.consecutive_failures) == ("green", 0)
    assert tied > 0
    assert_cards_match(conn, org)


def test_a_running_sync_shows_while_its_newest_row_is_a_step_within_the_window(conn: Connection) -> None:
    org, (iid,) = org_of(conn, 1)
    write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=2), "r1")
    write(conn, iid, "contact_import", "success", NOW - timedelta(hours=1), "r2")
    write(conn, iid, "sync_requested", "success", NOW - timedelta(minutes=30), None)  # the web app's row
    assert read_model.cards(conn, org, NOW)[0].sync_in_progress
    assert not read_model.cards(conn, org, NOW + timedelta(hours=6))[0].sync_in_progress  # the window ends
    write(conn, iid, "sync_finished", "success", NOW - timedelta(minutes=10), "r2")
    assert not read_model.cards(conn, org, NOW)[0].sync_in_progress
    assert_cards_match(conn, org)


def _statements(engine: Engine, call: Any) -> int:
    count = 0

    def capture(*_args: Any) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return count


def test_an_organisations_cards_send_the_same_statements_for_10_and_100_integrations(conn: Connection) -> None:
    counts = []
    for size in (10, 100):
        org, ids = org_of(conn, size, f"Org{size}")
        for n, iid in enumerate(ids):
            for hours, (event_type, outcome) in enumerate(EVENTS[: 3 + n % 6]):
                log(conn, iid, event_type, outcome, hours, run_id=f"r{n}")
        counts.append(_statements(conn.engine, lambda org=org: read_model.cards(conn, org, NOW)))
    assert counts[0] == counts[1] <= 2, counts  # the integrations with their summaries; their requests


def test_a_prune_leaves_the_summary_as_a_rebuild_would(db_url: str) -> None:
    """Retention deletes old rows in batches; the cards and the summary are the same before and after."""
    engine = db.engine(db_url)
    with engine.begin() as conn:
        org, ids = org_of(conn, 3)
        rng = random.Random(3)
        for iid in ids:
            for run in range(240):  # 240 runs, one a day: most of them older than the 90-day window
                event_type, outcome = rng.choice(EVENTS[:5])
                write(conn, iid, event_type, outcome, NOW - timedelta(days=run, hours=rng.random()), f"r{run}")
        before = [card.to_json() for card in read_model.cards(conn, org, NOW)]
    pruned = retention.prune(engine, 90, now=NOW, batch=50, rest=0)
    assert pruned.deleted["crm_sync_log"] > 300
    with engine.begin() as conn:
        assert [card.to_json() for card in read_model.cards(conn, org, NOW)] == before
        assert_cards_match(conn, org)


def test_the_migration_backfills_the_summary_and_its_downgrade_drops_it(db_url: str) -> None:
    engine = db.engine(db_url)
    migrate(db_url, "downgrade", "0006")
    with engine.begin() as conn:
        assert "crm_sync_summary" not in inspect(conn).get_table_names()
        org, ids = org_of(conn, 2)
        for n, (event_type, outcome) in enumerate(EVENTS * 3):
            write(conn, ids[n % 2], event_type, outcome, NOW - timedelta(hours=n), f"r{n}")
    migrate(db_url, "upgrade", "head")
    with engine.begin() as conn:
        assert snapshot(conn)[1], "backfilled"
        assert_cards_match(conn, org)
        write(conn, ids[0], "sync_finished", "error", NOW, "r-new")  # and the triggers run from now on
        assert_cards_match(conn, org)


def test_concurrent_outside_writers_of_one_integration_take_turns(db_url: str) -> None:
    """PostgreSQL: a writer whose trigger waits on another's summary row sees that row's commit."""
    engine = db.engine(db_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with engine.begin() as conn:
        org, (iid,) = org_of(conn, 1)
        write(conn, iid, "sync_finished", "success", NOW - timedelta(hours=3), "r0")
    first = engine.connect()
    first.begin()
    write(first, iid, "sync_finished", "error", NOW - timedelta(hours=1), "r1")  # holds the summary row
    done = threading.Event()

    def second_writer() -> None:
        with engine.begin() as conn:
            write(conn, iid, "sync_finished", "error", NOW - timedelta(hours=2), "r2")
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    assert not done.wait(0.5)  # waiting on the first writer's summary row
    first.commit()
    first.close()
    thread.join(10)
    assert done.is_set()
    with engine.begin() as conn:
        assert read_model.cards(conn, org, NOW)[0].consecutive_failures == 2
        assert_cards_match(conn, org)
