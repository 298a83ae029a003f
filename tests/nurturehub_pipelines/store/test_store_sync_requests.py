"""The active-request rule has one home: `in_progress` (many integrations, one statement) answers as
`still_active` does (one request), whatever the request's state and age."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from nurturehub_pipelines.store import accounts, db, sync_requests
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import integrations

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with db.engine(db_url).begin() as connection:
        yield connection


def _finish(conn: Connection, iid: int, run_id: str, event_type: str = "sync_finished") -> None:
    write_event(
        conn, integration_id=iid, event_type=event_type, outcome="success", message="", trigger="sync_now",
        run_id=run_id, occurred_at=NOW,
    )  # fmt: skip


def _crafted(conn: Connection) -> list[int]:
    """One integration per state a request can be in (and two with no active request)."""
    org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")["org_id"]
    ids = []

    def integration(name: str) -> int:
        ids.append(accounts.add_integration(conn, org, "reapit", name, {"customer_id": name}, {}))
        return ids[-1]

    def request(name: str, requested: timedelta, launched: timedelta | None = None, run: str | None = None) -> int:
        iid = integration(name)
        request_id = sync_requests.create(conn, iid, "sync_now", None, NOW - requested)
        if launched is not None:
            sync_requests.mark_launched(conn, request_id, NOW - launched)
        if run is not None:
            sync_requests.set_run_id(conn, request_id, run)
        return iid

    integration("no request")
    closed = request("closed", HOUR)
    sync_requests.close(conn, sync_requests.active_request(conn, closed).id, "finished", NOW)  # type: ignore[union-attr]
    request("pending", 0 * HOUR)
    request("pending for 23 h", 23 * HOUR)
    request("pending for 25 h", 25 * HOUR)
    request("queued", HOUR, launched=0 * HOUR)
    request("queued for 7 h", 8 * HOUR, launched=7 * HOUR)
    request("running", HOUR, launched=HOUR, run="running")
    _finish(conn, request("running, steps written", HOUR, launched=HOUR, run="steps"), "steps", "contact_import")
    _finish(conn, request("its run finished", HOUR, launched=HOUR, run="done"), "done")
    _finish(conn, request("finished and old", 8 * HOUR, launched=7 * HOUR, run="old"), "old")
    request("running for 5 h", 6 * HOUR, launched=5 * HOUR, run="slow")
    _finish(conn, request("another run finished", HOUR, launched=HOUR, run="mine"), "someone else's")
    return ids


@pytest.mark.parametrize("later", [0 * HOUR, HOUR, 6 * HOUR, 24 * HOUR, 30 * HOUR])
def test_in_progress_is_still_active_batched(conn: Connection, later: timedelta) -> None:
    ids = _crafted(conn)
    now = NOW + later
    one_by_one = set()
    for iid in ids:
        request = sync_requests.active_request(conn, iid)
        if request is not None and sync_requests.still_active(conn, request, now):
            one_by_one.add(iid)
        assert sync_requests.in_progress(conn, [iid], now) == ({iid} & one_by_one)
    assert sync_requests.in_progress(conn, ids, now) == one_by_one
    assert sync_requests.in_progress(conn, [], now) == set()
    if later == 0 * HOUR:  # the states above, told apart
        names = conn.execute(integrations.select().where(integrations.c.id.in_(one_by_one))).all()
        assert sorted(row.name for row in names) == [
            "another run finished", "pending", "pending for 23 h", "queued", "running", "running for 5 h",
            "running, steps written",
        ]  # fmt: skip
