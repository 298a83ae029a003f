"""The read-only routes' fast path: the same bytes as Starlette's JSON, one connection, no query for anonymous
callers, and `nurturehub serve`'s server settings and garbage-collector freeze."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, create_engine, event, make_url, text
from starlette.responses import JSONResponse

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import utcnow
from nurturehub_pipelines.web import app as web_app
from nurturehub_pipelines.web.routes_api import ListingResponse
from tests.conftest import PG_ADMIN_URL

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World


def test_listing_json_is_byte_for_byte_starlettes_over_every_code_point() -> None:
    """orjson writes what JSONResponse (json.dumps, compact, UTF-8 unescaped) writes: every character, as the
    message and name fields can hold any text another tool wrote."""
    text = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    content = {
        "integrations": [
            {"id": 7, "name": text, "enabled": True, "paused_reason": None, "consecutive_failures": 0,
             "recent_errors": [{"log_id": 2**63 - 1, "message": "Reapit — “rejected”\n\t\x00\x7f\u2028"}]},
        ],
        "when": datetime(2026, 12, 2, 4, 5, 6, 7, tzinfo=UTC).isoformat(),
    }  # fmt: skip
    assert ListingResponse(content).body == JSONResponse(content).body


def test_listing_json_falls_back_for_what_orjson_refuses() -> None:
    content = {"events": [{"id": 2**70, "message": "x"}]}
    assert ListingResponse(content).body == JSONResponse(content).body


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[int, str]]]:
    """Every statement the engine sends, with the id of the DBAPI connection that sent it."""
    sent: list[tuple[int, str]] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append((id(conn.connection.dbapi_connection), statement))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def test_the_cards_read_on_one_connection_authentication_included(world: World) -> None:
    world.finished_run(world.a_reapit, "success", utcnow() - timedelta(hours=1))
    owner = world.client("owner")
    with statements(db.read_engine(world.db_url)) as sent, statements(db.engine(world.db_url)) as elsewhere:
        assert owner.get("/api/integrations").status_code == 200
        assert owner.get(f"/api/integrations/{world.a_reapit}/log?limit=5").status_code == 200
    assert elsewhere == []
    cards, log = sent[: len(sent) // 2], sent[len(sent) // 2 :]
    assert any("users" in statement for _, statement in cards)  # authentication, on the same connection
    assert len({conn for conn, _ in cards}) == 1 and len({conn for conn, _ in log}) == 1


def test_the_read_engine_opens_no_transaction(db_url: str) -> None:
    """Autocommit: no BEGIN before a GET's reads and no ROLLBACK after (psycopg2 sends both itself)."""
    with db.read_engine(db_url).connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if conn.dialect.name == "postgresql":
            assert raw.autocommit is True
        else:
            assert raw.isolation_level is None
    with db.engine(db_url).connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None and (raw.autocommit is False if conn.dialect.name == "postgresql" else True)


def test_anonymous_and_refused_reads_answer_as_before_and_anonymous_ones_query_nothing(world: World) -> None:
    with statements(db.read_engine(world.db_url)) as sent:
        anonymous = world.client().get("/api/integrations")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert world.client().get(f"/api/integrations/{world.a_reapit}/log").status_code == 401
    assert sent == []
    assert world.client("member").get("/api/integrations").status_code == 403
    assert world.client("member").get(f"/api/integrations/{world.b_reapit}/log").status_code == 403
    assert world.client("owner").get(f"/api/integrations/{world.b_reapit}/log").status_code == 404
    assert world.client("owner").get("/api/integrations/0/log").status_code == 404
    assert world.client("owner").get(f"/api/integrations/{world.a_reapit}/log?limit=0").status_code == 422
    bad = world.client()
    bad.headers["Authorization"] = "Bearer not-a-token"
    assert bad.get("/api/integrations").status_code == 401


def test_a_session_sees_its_revocation_at_once_on_the_read_path(world: World) -> None:
    """No cached authentication: signing out ends the cookie for the very next GET."""
    browser, csrf = world.browser("owner")
    assert browser.get("/api/integrations").status_code == 200
    assert browser.post("/signout", data={"csrf_token": csrf}).status_code == 303
    assert browser.get("/api/integrations").status_code == 401


def test_serve_freezes_the_startup_heap_and_runs_the_declared_server(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        seen.update(options, frozen=gc.get_freeze_count())

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        web_app.serve("127.0.0.1", 0)
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 0
    assert {key: seen[key] for key in web_app.SERVER_OPTIONS} == web_app.SERVER_OPTIONS
    assert (seen["http"], seen["loop"]) == ("httptools", "uvloop")


def test_cards_json_is_unchanged_in_shape(world: World) -> None:
    """The contract's fields and types, through the new renderer."""
    world.finished_run(world.a_street, "error", utcnow() - timedelta(minutes=5), "Street rejected the API token")
    answer = world.client("owner").get("/api/integrations")
    assert answer.headers["content-type"] == "application/json"
    street = next(card for card in answer.json()["integrations"] if card["id"] == world.a_street)
    assert datetime.fromisoformat(street["recent_errors"][0]["occurred_at"]).tzinfo is not None
    assert json.loads(answer.content) == answer.json()


def test_a_read_rides_out_a_database_restart(world: World) -> None:
    """The read engine pings no connection before lending it: a read on one the server dropped runs again on a
    fresh one, so the first page after a PostgreSQL restart still answers."""
    if make_url(world.db_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL drops connections; SQLite has none to drop")
    owner = world.client("owner")
    assert owner.get("/api/integrations").status_code == 200  # the read engine now pools a connection
    assert owner.get(f"/api/integrations/{world.a_reapit}/log").status_code == 200
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            dropped = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"),
                {"name": make_url(world.db_url).database},
            ).scalar_one()
    finally:
        admin.dispose()
    assert dropped >= 1
    assert owner.get("/api/integrations").status_code == 200
    assert owner.get(f"/api/integrations/{world.a_reapit}/log").status_code == 200
