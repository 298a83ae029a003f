"""When an alert is written, to whom and saying what: streaks from crm_sync_log rows written outside a run,
delivered to a real SMTP server on loopback."""

from __future__ import annotations

import threading

import pytest

from nurturehub_pipelines import alerts
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.sync_log import write_event
from tests.support.alert_world import LINK, OWNER, AlertLoop, Org, fail, finish, in_app, outbox
from tests.support.smtp_capture import SmtpCapture


def test_third_failure_emails_the_owner_only_with_crm_count_error_and_link(
    org: Org, smtp: SmtpCapture, loop: AlertLoop
) -> None:
    integration = org.integration(name="Head office")
    fail(integration, 2)
    loop.tick()
    assert smtp.messages == []
    fail(integration, message="Reapit rejected the credentials: reconnect Reapit")
    loop.tick()

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


def test_a_fourth_failure_sends_nothing_and_a_success_sends_one_recovery(
    org: Org, smtp: SmtpCapture, loop: AlertLoop
) -> None:
    integration = org.integration()
    fail(integration, 3)
    loop.tick()
    assert len(smtp.wait_for(1)) == 1
    fail(integration)
    loop.tick()
    finish(integration, "success", "Synced 3 contacts")
    loop.tick()
    loop.tick()

    mails = smtp.wait_for(2)
    assert len(mails) == 2
    recovered = mails[1]
    assert recovered.rcpt_tos == (OWNER,)
    assert "Reapit" in recovered.subject and "syncing again" in recovered.subject
    assert "resumed" in recovered.body and LINK in recovered.body
    assert [n["kind"] for n in in_app()] == ["failure", "recovered"]


def test_a_warning_also_ends_the_streak(org: Org, smtp: SmtpCapture, loop: AlertLoop) -> None:
    integration = org.integration()
    fail(integration, 3)
    loop.tick()
    finish(integration, "warning", "2 records skipped")
    loop.tick()
    assert [m.subject.split(":")[0] for m in smtp.wait_for(2)] == ["NurtureHub"] * 2
    assert [row["kind"] for row in outbox()] == ["failure", "recovered"]


def test_two_failures_then_a_success_send_nothing(org: Org, smtp: SmtpCapture, loop: AlertLoop) -> None:
    integration = org.integration()
    fail(integration, 2)
    loop.tick()
    finish(integration, "success")
    loop.tick()
    fail(integration, 2)  # a new streak counts from zero
    loop.tick()
    assert outbox() == [] and in_app() == [] and smtp.messages == []


def test_a_refused_sync_now_does_not_count(org: Org, smtp: SmtpCapture, loop: AlertLoop) -> None:
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
    loop.tick()
    assert outbox() == []


def test_a_streak_that_ends_before_it_is_evaluated_still_alerts_then_recovers(
    org: Org, smtp: SmtpCapture, loop: AlertLoop
) -> None:
    integration = org.integration()
    loop.tick()
    fail(integration, 3)
    finish(integration, "success")
    loop.tick()
    mails = smtp.wait_for(2)
    assert ["failed to sync 3 times" in m.subject for m in mails] == [True, False]
    assert "syncing again" in mails[1].subject


def test_re_evaluation_and_a_restart_send_no_duplicate(org: Org, smtp: SmtpCapture, loop: AlertLoop) -> None:
    first, second = org.integration(), org.integration(crm="openapi", name="Open API")
    fail(first, 3)
    fail(second, 3)
    for _ in range(3):
        loop.tick()
    db.engine().dispose()
    db._engine_for.cache_clear()  # a new process: nothing is remembered but the database
    loop.watermark = None  # even the watermark lost
    loop.tick()
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


def test_without_an_smtp_url_alerts_stay_in_the_outbox_and_in_app(
    org: Org, monkeypatch: pytest.MonkeyPatch, loop: AlertLoop
) -> None:
    monkeypatch.delenv("NURTUREHUB_SMTP_URL", raising=False)
    integration = org.integration()
    fail(integration, 3)
    loop.tick()
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 0
    assert [n["kind"] for n in in_app()] == ["failure"]


def test_the_threshold_comes_from_the_environment(
    org: Org, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch, loop: AlertLoop
) -> None:
    monkeypatch.setenv("NURTUREHUB_FAILURE_THRESHOLD", "5")
    integration = org.integration()
    fail(integration, 4)
    loop.tick()
    assert outbox() == []
    fail(integration)
    loop.tick()
    assert "5 times in a row" in smtp.wait_for(1)[0].subject
