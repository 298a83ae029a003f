"""`alert_sensor` against real runs: the real `sync_reapit` job on a real Dagster instance, the CRM sandbox
over loopback, and alerts delivered to a real SMTP server by the `deliver_alerts` runs the sensor asks for."""

from __future__ import annotations

import time

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus, build_sensor_context

from nurturehub_pipelines.alerts import deliver_alerts
from nurturehub_pipelines.alerts import delivery as alert_delivery
from nurturehub_pipelines.alerts.job import (
    FAILED_RUN_BACKOFF,
    STUCK_AFTER,
    delivery_failed_lately,
    delivery_in_flight,
)
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import utcnow
from sensors.alerts import alert_sensor
from tests.support.agency import Agency, finished_rows, outbox_kinds, queued_run, sensor_resources
from tests.support.alert_world import OWNER, fail, outbox
from tests.support.smtp_capture import SmtpCapture


def test_three_failed_runs_email_the_owner_once_then_a_fourth_sends_nothing_and_a_success_one_recovery(
    agency: Agency, smtp: SmtpCapture
) -> None:
    integration = agency.integration()
    for _ in range(2):
        assert not agency.sync(integration)
        agency.tick()
    assert smtp.messages == []

    assert not agency.sync(integration)
    agency.tick()
    [alert] = smtp.wait_for(1)
    assert alert.rcpt_tos == (OWNER,)
    assert "Reapit" in alert.subject and "3 times in a row" in alert.subject
    assert finished_rows(integration)[-1]["message"] in alert.body  # the failing step's message, in words
    assert "https://app.nurturehub.example/dashboard/settings/integrations" in alert.body

    assert not agency.sync(integration)
    agency.tick()
    agency.tick()
    assert len(smtp.messages) == 1

    agency.reconnect(integration)
    assert agency.sync(integration)
    agency.tick()
    mails = smtp.wait_for(2)
    assert len(mails) == 2 and "syncing again" in mails[1].subject and mails[1].rcpt_tos == (OWNER,)
    assert [row["outcome"] for row in finished_rows(integration)] == ["error"] * 4 + ["success"]
    assert len(agency.deliveries) == 2  # one delivery run per email that fell due, none on idle ticks


def test_two_failed_runs_then_a_success_send_nothing(agency: Agency, smtp: SmtpCapture) -> None:
    integration = agency.integration()
    for _ in range(2):
        assert not agency.sync(integration, trigger="sync_now")
        agency.tick()
    agency.reconnect(integration)
    assert agency.sync(integration, trigger="retry")
    agency.tick()
    assert smtp.messages == [] and outbox_kinds() == [] and agency.deliveries == []


def test_two_integrations_crossing_the_threshold_in_one_tick_get_one_email_each(
    agency: Agency, smtp: SmtpCapture
) -> None:
    first, second = agency.integration("Head office"), agency.integration("Lettings")
    for _ in range(3):
        assert not agency.sync(first)
        assert not agency.sync(second)
    agency.tick()
    mails = smtp.wait_for(2)
    assert sorted(m.subject for m in mails) == [
        "NurtureHub: Reapit (Head office) has failed to sync 3 times in a row",
        "NurtureHub: Reapit (Lettings) has failed to sync 3 times in a row",
    ]
    assert len(agency.deliveries) == 1  # one run delivered both


def test_evaluating_again_or_restarting_the_daemon_sends_no_duplicate(agency: Agency, smtp: SmtpCapture) -> None:
    integration = agency.integration()
    for _ in range(3):
        agency.sync(integration)
    agency.tick()
    agency.tick()
    # A restarted daemon with its sensors reset: no cursors, a new process (no engine, no memory).
    agency.outcome_cursor = agency.alert_cursor = None
    db.engine().dispose()
    db._engine_for.cache_clear()
    agency.tick()
    assert len(smtp.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and outbox_kinds() == [(integration, "failure")]
    assert len(finished_rows(integration)) == 3  # the sensor wrote nothing for runs that wrote their own


def test_smtp_refusing_mail_at_the_third_failure_delivers_it_later_exactly_once(
    agency: Agency, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alert_delivery, "RETRY_BASE_SECONDS", 0)  # retry at the next tick
    integration = agency.integration()
    for _ in range(2):
        agency.sync(integration)
    smtp.refuse_with = "421 4.3.2 Service not available, closing transmission channel"
    agency.sync(integration)
    agency.tick()
    agency.tick()
    assert smtp.messages == []
    smtp.refuse_with = None
    agency.tick()
    agency.tick()
    assert len(smtp.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(smtp.messages) == 1


def test_a_delivery_run_is_launched_only_when_mail_is_due_and_never_twice_while_one_waits(
    agency: Agency, smtp: SmtpCapture
) -> None:
    integration = agency.integration()
    assert agency.alert_tick() == []  # nothing due
    fail(integration, 3)
    [request] = agency.alert_tick()
    assert request.job_name == "deliver_alerts"
    assert request.tags["nurturehub/service"] == "alert_delivery" and int(request.tags["dagster/priority"]) > 0
    assert outbox()[0]["sent_at"] is None  # the tick wrote the alert; it sends nothing itself

    # The daemon creates the run and queues it, then the queue starts it: no tick meanwhile launches another.
    run = queued_run(agency.instance, deliver_alerts, request.tags)
    assert agency.alert_tick() == [] and agency.alert_tick() == []
    start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=deliver_alerts.name)
    agency.instance.report_dagster_event(start, run.run_id)
    assert agency.instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # type: ignore[union-attr]
    assert agency.alert_tick() == []
    # Only a delivery run that is stuck (created five minutes ago, and still not done) lets another go beside it.
    assert delivery_in_flight(agency.instance) and not delivery_in_flight(agency.instance, utcnow() + STUCK_AFTER)

    agency.deliver(request)  # it runs (here, as a run of its own): the alert leaves and is marked sent
    agency.instance.report_run_canceled(run)
    assert len(smtp.wait_for(1)) == 1 and outbox()[0]["sent_at"] is not None
    assert agency.alert_tick() == []  # nothing due any more


def test_after_a_delivery_run_failed_the_next_waits_a_little(agency: Agency, smtp: SmtpCapture) -> None:
    fail(agency.integration(), 3)
    [request] = agency.alert_tick()
    crashed = agency.instance.create_run_for_job(deliver_alerts, tags=request.tags)
    agency.instance.report_run_failed(crashed)  # the run itself crashed: its alert is still due
    assert agency.alert_tick() == []
    assert not delivery_failed_lately(agency.instance, utcnow() + FAILED_RUN_BACKOFF * 2)


def test_a_malformed_smtp_url_fails_the_tick_after_the_outbox_is_written(
    agency: Agency, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTUREHUB_SMTP_URL", "mail.example:25")
    fail(agency.integration(), 3)
    with pytest.raises(Exception, match="smtp://host:port"):
        agency.alert_tick()
    assert [row["kind"] for row in outbox()] == ["failure"]  # and in-app: only the email waits for a fix


def test_without_an_smtp_url_no_delivery_run_is_launched(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTUREHUB_SMTP_URL", raising=False)
    fail(agency.integration(), 3)
    assert agency.alert_tick() == []
    [row] = outbox()
    assert row["kind"] == "failure" and row["sent_at"] is None


def test_a_tick_that_wrote_alerts_is_not_reported_as_skipped(agency: Agency, smtp: SmtpCapture) -> None:
    fail(agency.integration(), 3)
    context = build_sensor_context(instance=agency.instance, resources=sensor_resources())
    wrote = alert_sensor.evaluate_tick(context)
    assert wrote.skip_message is None and wrote.cursor
    [request] = wrote.run_requests or []
    agency.deliver(request)
    idle = alert_sensor.evaluate_tick(
        build_sensor_context(instance=agency.instance, cursor=wrote.cursor, resources=sensor_resources())
    )
    assert idle.skip_message and not idle.run_requests and idle.cursor
