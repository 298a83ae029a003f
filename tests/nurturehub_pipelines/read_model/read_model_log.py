"""Shared by the read model's tests: log rows written with explicit times, a card read back, query plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import Card
from nurturehub_pipelines.store.sync_log import write_event

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # GMT: London time is UTC time


def log(conn: Connection, iid: int, event_type: str, outcome: str, hours_ago: float, **values: Any) -> int:
    values.setdefault("message", f"{event_type} {outcome}")
    values.setdefault("trigger", "schedule")
    return write_event(
        conn,
        integration_id=iid,
        event_type=event_type,
        outcome=outcome,
        occurred_at=NOW - timedelta(hours=hours_ago),
        **values,
    )


def card(conn: Connection, iid: int, now: datetime = NOW) -> Card:
    ref = read_model.integration_ref(conn, iid)
    assert ref is not None
    return read_model.card(conn, ref, now)


def log_plans(conn: Connection, statements: list[tuple[str, Any]]) -> list[str]:
    """Each captured SELECT that reads crm_sync_log, followed by its plan."""
    found = []
    for statement, params in statements:
        if "crm_sync_log" not in statement or not statement.lstrip().upper().startswith("SELECT"):
            continue
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            found.append(statement + "\n" + "\n".join(row[-1] for row in rows))
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
            found.append(statement + "\n" + "\n".join(row[0] for row in rows))
    return found
