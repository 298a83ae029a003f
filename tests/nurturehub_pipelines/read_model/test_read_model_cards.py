"""One card's cost: every query an index seek, none a sort."""

from __future__ import annotations

from typing import Any

from read_model_log import NOW, card, log, log_plans
from sqlalchemy import Connection, event, text

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store import sync_requests


def test_every_card_query_is_an_index_seek(conn: Connection, iid: int) -> None:
    """No query walks a whole integration's log: each uses an index, and none sorts."""
    for hours in range(50):
        log(conn, iid, "sync_finished", ("success", "warning", "error")[hours % 3], hours, run_id=f"r{hours}")
    sync_requests.mark_launched(conn, sync_requests.create(conn, iid, "retry", None, NOW), NOW)
    sync_requests.set_run_id(conn, sync_requests.active_request(conn, iid).id, "r0")  # type: ignore[union-attr]
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE crm_sync_log"))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, params))

    event.listen(conn.engine, "before_cursor_execute", capture)
    try:
        card(conn, iid)
        read_model.log_events(conn, iid)
        read_model.error_event(conn, iid, 1)
    finally:
        event.remove(conn.engine, "before_cursor_execute", capture)
    plans = log_plans(conn, statements)
    assert len(plans) >= 8
    for plan in plans:
        lowered = plan.lower()
        assert "index" in lowered or "primary key" in lowered, plan
        assert "seq scan" not in lowered and "scan crm_sync_log\n" not in lowered + "\n", plan
        assert "temp b-tree" not in lowered and "sort" not in lowered.split("\n", 1)[1], plan
