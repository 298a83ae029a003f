"""Failure-streak alerts from crm_sync_log rows written outside a run, delivered to a real SMTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, select, update

from nurturehub_pipelines import alerts
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.smtp_capture import SmtpCapture
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import alert_outbox, crm_sync_log, notifications, sensor_cursors

BASE_URL = "https://app.nurturehub.example"
LINK = f"{BASE_URL}/dashboard/settings/integrations"
OWNER = "owner@harbour.example"


@dataclass
class Org:
    org_id: int
    owner_id: int

    def integration(self, crm: str = "reapit", name: str = "Reapit") -> int:
        with db.engine().begin() as conn:
            return accounts.add_integration(conn, self.org_id, crm, name, {}, {})


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        monkeypatch.setenv("NURTUREHUB_SMTP_URL", server.url)
        yield server


@pytest.fixture
def org(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Org:
    """An organisation with an owner, an admin and a member: only the owner may be emailed."""
    monkeypatch.setenv("NURTUREHUB_BASE_URL", BASE_URL + "/")
    for default in ("NURTUREHUB_ALERT_FROM", "NURTUREHUB_FAILURE_THRESHOLD"):
        monkeypatch.delenv(default, raising=False)
    with db.engine().begin() as conn:
        created = accounts.create_org(conn, "Harbour Lettings", OWNER)
        accounts.add_user(conn, created["org_id"], "admin@harbour.example", "admin")
        accounts.add_user(conn, created["org_id"], "member@harbour.example", "member")
    return Org(created["org_id"], created["owner_user_id"])


def finish(integration_id: int, outcome: str, message: str = "", times: int = 1) -> None:
    with db.engine().begin() as conn:
        for _ in range(times):
            write_event(
                conn,
                integration_id=integration_id,
                event_type="sync_finished",
                outcome=outcome,
                message=message,
                trigger="schedule",
            )


def fail(
    integration_id: int, times: int = 1, message: str = "Reapit rejected the credentials: reconnect Reapit"
) -> None:
    finish(integration_id, "error", message, times)


def tick() -> tuple[alerts.Evaluation, alerts.Delivery]:
    return alerts.run_once(db.engine(), AlertSettings.from_env())


def outbox() -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        return [dict(row) for row in conn.execute(select(alert_outbox).order_by(alert_outbox.c.id)).mappings()]


def in_app() -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        return [dict(row) for row in conn.execute(select(notifications).order_by(notifications.c.id)).mappings()]


def test_third_failure_emails_the_owner_only_with_crm_count_error_and_link(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration(name="Head office")
    fail(integration, 2)
    tick()
    assert smtp.messages == []
    fail(integration, message="Reapit rejected the credentials: reconnect Reapit")
    tick()

    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == (OWNER,)
    assert mail.message["To"] == OWNER
    assert mail.mail_from == mail.message["From"] == "alerts@localhost"  # NURTUREHUB_ALERT_FROM's default
    assert "Reapit (Head office)" in mail.subject and "3 times in a row" in mail.subject
    assert "3 times in a row" in mail.body
    assert "Reapit rejected the credentials: reconnect Reapit" in mail.body
    assert LINK in mail.body
    [note] = in_app()
    assert (note["user_id"], note["kind"], note["integration_id"]) == (org.owner_id, "failure", integration)
    [row] = outbox()
    assert row["sent_at"] is not None and row["attempts"] == 1


def test_a_fourth_failure_sends_nothing_and_a_success_sends_one_recovery(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration()
    fail(integration, 3)
    tick()
    assert len(smtp.wait_for(1)) == 1
    fail(integration)
    tick()
    finish(integration, "success", "Synced 3 contacts")
    tick()
    tick()

    mails = smtp.wait_for(2)
    assert len(mails) == 2
    recovered = mails[1]
    assert recovered.rcpt_tos == (OWNER,)
    assert "Reapit" in recovered.subject and "syncing again" in recovered.subject
    assert "resumed" in recovered.body and LINK in recovered.body
    assert [n["kind"] for n in in_app()] == ["failure", "recovered"]


def test_a_warning_also_ends_the_streak(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration()
    fail(integration, 3)
    tick()
    finish(integration, "warning", "2 records skipped")
    tick()
    assert [m.subject.split(":")[0] for m in smtp.wait_for(2)] == ["NurtureHub"] * 2
    assert [row["kind"] for row in outbox()] == ["failure", "recovered"]


def test_two_failures_then_a_success_send_nothing(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration()
    fail(integration, 2)
    tick()
    finish(integration, "success")
    tick()
    fail(integration, 2)  # a new streak counts from zero
    tick()
    assert outbox() == [] and in_app() == [] and smtp.messages == []


def test_a_refused_sync_now_does_not_count(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration()
    fail(integration, 2)
    with db.engine().begin() as conn:
        write_event(
            conn,
            integration_id=integration,
            event_type="sync_requested",
            outcome="error",
            message="Reapit rate limit: next attempt at 14:05",
            trigger="sync_now",
        )
    tick()
    assert outbox() == []


def test_a_streak_that_ends_before_it_is_evaluated_still_alerts_then_recovers(org: Org, smtp: SmtpCapture) -> None:
    integration = org.integration()
    tick()
    fail(integration, 3)
    finish(integration, "success")
    tick()
    mails = smtp.wait_for(2)
    assert ["failed to sync 3 times" in m.subject for m in mails] == [True, False]
    assert "syncing again" in mails[1].subject


def test_re_evaluation_and_a_restart_send_no_duplicate(org: Org, smtp: SmtpCapture) -> None:
    first, second = org.integration(), org.integration(crm="openapi", name="Open API")
    fail(first, 3)
    fail(second, 3)
    for _ in range(3):
        tick()
    db.engine().dispose()
    db._engine_for.cache_clear()  # a new process: nothing is remembered but the database
    with db.engine().begin() as conn:
        conn.execute(sensor_cursors.delete())  # even the watermark lost
    tick()
    assert sorted(m.subject for m in smtp.wait_for(2)) == [
        "NurtureHub: Open API has failed to sync 3 times in a row",
        "NurtureHub: Reapit has failed to sync 3 times in a row",
    ]
    assert len(outbox()) == 2 and len(in_app()) == 2


def test_concurrent_evaluators_write_one_alert(org: Org, db_url: str) -> None:
    integration = org.integration()
    fail(integration, 3)
    settings = AlertSettings.from_env()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def evaluate() -> None:
        barrier.wait()
        try:
            with db.engine().begin() as conn:
                alerts.evaluate(conn, [integration], settings)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(outbox()) == 1 and len(in_app()) == 1


def test_smtp_refusing_mail_delays_the_alert_and_delivers_it_once(
    org: Org, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "RETRY_BASE_SECONDS", 0)  # retry at the next tick instead of in 5 s
    integration = org.integration()
    fail(integration, 2)
    tick()
    smtp.refuse_with = "451 4.3.0 Mailbox temporarily unavailable"
    fail(integration)
    _, delivery = tick()
    assert delivery.failed == 1 and smtp.messages == []
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 1 and "451" in str(row["last_error"])

    smtp.refuse_with = None
    tick()
    tick()
    assert len(smtp.wait_for(1)) == 1
    tick()
    assert len(smtp.messages) == 1
    [row] = outbox()
    assert row["sent_at"] is not None and row["attempts"] == 2


def test_an_smtp_outage_backs_off_and_never_loses_the_alert(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpCapture() as probe:
        port = probe.port  # a port nobody listens on once the probe stops
    monkeypatch.setenv("NURTUREHUB_SMTP_URL", f"smtp://127.0.0.1:{port}")
    integration = org.integration()
    fail(integration, 3)
    tick()
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 1 and row["next_attempt_at"] is not None
    tick()  # not due yet: no second attempt
    assert outbox()[0]["attempts"] == 1

    with SmtpCapture(port=port) as smtp:
        with db.engine().begin() as conn:  # the back-off has passed
            conn.execute(update(alert_outbox).values(next_attempt_at=alerts.utcnow()))
        tick()
        assert len(smtp.wait_for(1)) == 1
    assert outbox()[0]["sent_at"] is not None


def test_without_an_smtp_url_alerts_stay_in_the_outbox_and_in_app(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTUREHUB_SMTP_URL", raising=False)
    integration = org.integration()
    fail(integration, 3)
    tick()
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 0
    assert [n["kind"] for n in in_app()] == ["failure"]


def test_the_threshold_comes_from_the_environment(org: Org, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_FAILURE_THRESHOLD", "5")
    integration = org.integration()
    fail(integration, 4)
    tick()
    assert outbox() == []
    fail(integration)
    tick()
    assert "5 times in a row" in smtp.wait_for(1)[0].subject


def test_smtp_urls() -> None:
    assert alerts.parse_smtp_url("smtp://127.0.0.1:2525") == alerts.SmtpTarget("127.0.0.1", 2525)
    assert alerts.parse_smtp_url("smtp+starttls://alerts%40x.example:p%3Ass@mail.example:587") == alerts.SmtpTarget(
        "mail.example", 587, starttls=True, username="alerts@x.example", password="p:ss"
    )
    with pytest.raises(ValueError, match="smtp://host:port"):
        alerts.parse_smtp_url("http://mail.example")


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
    alerts.evaluate_new_rows(db.engine(), settings, now)
    with db.engine().begin() as conn:
        conn.execute(insert(crm_sync_log).values(log_row(100, other, "success")))
    alerts.evaluate_new_rows(db.engine(), settings, now)  # id 100 seen
    with db.engine().begin() as conn:  # the third failure commits now, with a lower id
        conn.execute(insert(crm_sync_log).values(log_row(50, late, "error")))
    assert alerts.evaluate_new_rows(db.engine(), settings, now + alerts.WATERMARK_LAG / 2).alerts == 1

    # Once the lag has passed, the watermark moves past what it has seen and the log is read from there.
    alerts.evaluate_new_rows(db.engine(), settings, now + alerts.WATERMARK_LAG * 2)
    with db.engine().connect() as conn:
        cursor = conn.execute(select(sensor_cursors.c.value)).scalar_one()
    assert json.loads(cursor) == {"low": 100, "marks": []}
