"""Sending the outbox to a real SMTP server on loopback: retries, outages, and alerts that fail alone."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from nurturehub_pipelines import alerts
from nurturehub_pipelines.alerts import delivery
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import alert_outbox, integrations, users
from tests.support.alert_world import OWNER, AlertLoop, Org, fail, outbox
from tests.support.smtp_capture import SmtpCapture


def test_smtp_refusing_mail_delays_the_alert_and_delivers_it_once(
    org: Org, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch, loop: AlertLoop
) -> None:
    monkeypatch.setattr(delivery, "RETRY_BASE_SECONDS", 0)  # retry at the next tick instead of in 5 s
    integration = org.integration()
    fail(integration, 2)
    loop.tick()
    smtp.refuse_with = "451 4.3.0 Mailbox temporarily unavailable"
    fail(integration)
    _, sent = loop.tick()
    assert sent.failed == 1 and smtp.messages == []
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 1 and "451" in str(row["last_error"])

    smtp.refuse_with = None
    loop.tick()
    loop.tick()
    assert len(smtp.wait_for(1)) == 1
    loop.tick()
    assert len(smtp.messages) == 1
    [row] = outbox()
    assert row["sent_at"] is not None and row["attempts"] == 2


def test_an_smtp_outage_backs_off_and_never_loses_the_alert(
    org: Org, monkeypatch: pytest.MonkeyPatch, loop: AlertLoop
) -> None:
    with SmtpCapture() as probe:
        port = probe.port  # a port nobody listens on once the probe stops
    monkeypatch.setenv("NURTUREHUB_SMTP_URL", f"smtp://127.0.0.1:{port}")
    integration = org.integration()
    fail(integration, 3)
    loop.tick()
    [row] = outbox()
    assert row["sent_at"] is None and row["attempts"] == 1 and row["next_attempt_at"] is not None
    assert not alerts.has_due(db.engine())  # backed off: nothing for a delivery run to do yet
    loop.tick()  # not due yet: no second attempt
    assert outbox()[0]["attempts"] == 1

    with SmtpCapture(port=port) as smtp:
        with db.engine().begin() as conn:  # the back-off has passed
            conn.execute(update(alert_outbox).values(next_attempt_at=alerts.utcnow()))
        assert alerts.has_due(db.engine())
        loop.tick()
        assert len(smtp.wait_for(1)) == 1
    assert outbox()[0]["sent_at"] is not None


def test_a_recipient_the_server_refuses_fails_alone_marked_with_the_reason(
    org: Org, smtp: SmtpCapture, loop: AlertLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RETRY_BASE_SECONDS", 0)  # a retried row would be due at the next tick
    with db.engine().begin() as conn:
        other = accounts.create_org(conn, "Quay Estates", "nobody@quay.example")
        quay = accounts.add_integration(conn, other["org_id"], "reapit", "Reapit", {}, {})
    harbour = org.integration()
    smtp.refuse_recipients = {"nobody@quay.example"}
    fail(quay, 3)
    fail(harbour, 3)
    _, sent = loop.tick()
    assert (sent.sent, sent.failed) == (1, 1)
    assert [mail.rcpt_tos for mail in smtp.wait_for(1)] == [(OWNER,)]
    refused, delivered = sorted(outbox(), key=lambda row: row["integration_id"] != quay)
    assert refused["sent_at"] is None and "550" in str(refused["last_error"])
    assert str(refused["last_error"]).startswith(delivery.NOT_RETRIED)
    assert delivered["sent_at"] is not None
    for _ in range(3):  # refused for good (5xx): not resent in a loop
        assert loop.tick()[1] == alerts.Delivery()
    assert outbox()[0]["attempts"] == 1 and not alerts.has_due(db.engine())


def test_a_message_that_cannot_be_built_fails_alone_and_is_not_retried(
    org: Org, smtp: SmtpCapture, loop: AlertLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RETRY_BASE_SECONDS", 0)
    with db.engine().begin() as conn:
        other = accounts.create_org(conn, "Quay Estates", "owner@quay.example")
        broken = accounts.add_integration(conn, other["org_id"], "reapit", "Reapit", {}, {})
        conn.execute(
            update(users)
            .where(users.c.org_id == other["org_id"])
            .values(email="owner@quay.example\r\nBcc: x@y.example")
        )
    fine = org.integration(name="Lettings")
    fail(broken, 3)
    fail(fine, 3)
    _, sent = loop.tick()
    assert (sent.sent, sent.failed) == (1, 1)
    assert ["Lettings" in mail.subject for mail in smtp.wait_for(1)] == [True]
    rows = {row["integration_id"]: row for row in outbox()}
    assert rows[broken]["sent_at"] is None and "not valid" in str(rows[broken]["last_error"])
    assert rows[fine]["sent_at"] is not None
    assert loop.tick()[1] == alerts.Delivery() and outbox()[0]["attempts"] == 1


@pytest.mark.parametrize("stored", ["Head\r\noffice\nBcc: x@y.example", "Branch " * 715])
def test_a_name_another_writer_stored_is_made_safe_and_its_alert_sent(
    org: Org, smtp: SmtpCapture, loop: AlertLoop, stored: str
) -> None:
    integration = org.integration(name="Lettings")
    with db.engine().begin() as conn:
        if conn.dialect.name == "postgresql":  # its varchar(200) holds no more; SQLite keeps all 5,000
            stored = stored[:200]
        conn.execute(update(integrations).where(integrations.c.id == integration).values(name=stored))
    fail(integration, 3)
    _, sent = loop.tick()
    assert sent == alerts.Delivery(sent=1)
    [mail] = smtp.wait_for(1)
    subject = mail.subject
    assert "\n" not in subject and "\r" not in subject and "Bcc" not in str(mail.message.get("Bcc", ""))
    assert subject.startswith("NurtureHub: Reapit (") and len(subject) < 200
    assert ("Head office" in subject) if "Head" in stored else ("Branch Branch" in subject and "…" in subject)


def test_a_delivery_stops_at_its_budget_and_leaves_the_rest_due(org: Org, smtp: SmtpCapture, loop: AlertLoop) -> None:
    for name in ("A", "B", "C"):
        fail(org.integration(name=name), 3)
    loop.evaluate()
    settings = AlertSettings.from_env()
    first = alerts.deliver(db.engine(), settings, batch=1, budget_seconds=0.0)
    assert first == alerts.Delivery() and alerts.has_due(db.engine())
    assert alerts.deliver(db.engine(), settings, batch=1) == alerts.Delivery(sent=3)
    assert len(smtp.wait_for(3)) == 3 and not alerts.has_due(db.engine())


def test_smtp_urls() -> None:
    assert alerts.parse_smtp_url("smtp://127.0.0.1:2525") == alerts.SmtpTarget("127.0.0.1", 2525)
    target = alerts.parse_smtp_url("smtp+starttls://alerts%40x.example:p%3Ass@mail.example:587")
    assert target == alerts.SmtpTarget("mail.example", 587, starttls=True, username="alerts@x.example", password="p:ss")
    assert "p:ss" not in repr(target)  # a target that ends up in a log line never shows the password
    with pytest.raises(ValueError, match="smtp://host:port"):
        alerts.parse_smtp_url("http://mail.example")
