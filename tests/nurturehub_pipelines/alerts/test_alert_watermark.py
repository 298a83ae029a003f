"""The watermark: which log rows an evaluation reads, and what the sensor's cursor keeps between ticks."""

from __future__ import annotations

from sqlalchemy import delete, insert

from nurturehub_pipelines import alerts
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log
from tests.support.alert_world import Org, fail, outbox
from tests.support.smtp_capture import SmtpCapture


def log_row(id: int, integration_id: int, outcome: str) -> dict[str, object]:
    return {
        "id": id,
        "integration_id": integration_id,
        "trigger": "schedule",
        "event_type": "sync_finished",
        "outcome": outcome,
        "message": "Reapit is down" if outcome == "error" else "",
        "occurred_at": alerts.utcnow(),
    }


def test_a_row_that_becomes_visible_late_with_a_lower_id_is_still_evaluated(org: Org, smtp: SmtpCapture) -> None:
    """On PostgreSQL a row can commit after one with a higher id: the watermark lags a minute behind."""
    late, other = org.integration(), org.integration(crm="openapi", name="Open API")
    fail(late, 2)
    now = alerts.utcnow()
    settings = AlertSettings.from_env()
    _, mark = alerts.evaluate_new_rows(db.engine(), settings, None, now)
    with db.engine().begin() as conn:
        conn.execute(insert(crm_sync_log).values(log_row(100, other, "success")))
    _, mark = alerts.evaluate_new_rows(db.engine(), settings, mark, now)  # id 100 seen
    with db.engine().begin() as conn:  # the third failure commits now, with a lower id
        conn.execute(insert(crm_sync_log).values(log_row(50, late, "error")))
    found, mark = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG / 2)
    assert found.alerts == 1

    # Once the lag has passed, the watermark moves past what it has seen and the log is read from there.
    _, mark = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG * 2)
    assert (mark.low, mark.marks) == (100, ())
    assert alerts.Watermark.loads(mark.dumps()) == mark  # what the sensor's cursor holds, read back the same


def test_once_the_lag_has_passed_an_idle_evaluation_reads_nothing_and_keeps_the_watermark(org: Org) -> None:
    fail(org.integration(), 3)
    now = alerts.utcnow()
    settings = AlertSettings.from_env()
    first, mark = alerts.evaluate_new_rows(db.engine(), settings, None, now)
    assert first.alerts == 1
    again, mark = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG / 2)
    assert again == alerts.Evaluation(integrations=1)  # within the lag its rows are read again, harmlessly
    _, passed = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG * 2)
    idle, kept = alerts.evaluate_new_rows(db.engine(), settings, passed, now + alerts.WATERMARK_LAG * 3)
    assert idle == alerts.Evaluation() and kept == passed and passed.marks == ()


def test_a_watermark_made_on_another_log_starts_afresh(org: Org) -> None:
    """A recreated app database under the same Dagster instance: its rows are read, not skipped."""
    first, second = org.integration(), org.integration(name="Lettings")
    fail(first, 3)
    now = alerts.utcnow()
    settings = AlertSettings.from_env()
    _, mark = alerts.evaluate_new_rows(db.engine(), settings, None, now)
    _, mark = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG * 2)
    assert mark.low > 0 and mark.low_at is not None
    with db.engine().begin() as conn:  # a new log, whose ids start again from 1
        conn.execute(delete(crm_sync_log))
        conn.execute(insert(crm_sync_log), [log_row(i, second, "error") for i in range(1, mark.low + 1)])
    found, moved = alerts.evaluate_new_rows(db.engine(), settings, mark, now + alerts.WATERMARK_LAG * 3)
    assert found.alerts == 1 and moved.low_at != mark.low_at
    assert [row["kind"] for row in outbox() if row["integration_id"] == second] == ["failure"]


def test_an_unreadable_cursor_counts_as_none() -> None:
    assert alerts.Watermark.loads(None) is None
    assert alerts.Watermark.loads("not json") is None
    assert alerts.Watermark.loads('{"low": 5}') is None
    assert alerts.Watermark.loads('{"low": 5, "marks": [[1.5, 7]]}') == alerts.Watermark(5, None, ((1.5, 7),))
