"""The `deliver_alerts` job: its op sends the due outbox and marks it, with the resources Definitions binds."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance

from nurturehub_pipelines import alerts
from nurturehub_pipelines.alerts import alert_delivery_from_env, deliver_alerts
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.store import db
from tests.support.alert_world import OWNER, AlertLoop, Org, fail, outbox
from tests.support.smtp_capture import SmtpCapture

PASSWORD = "s3cret-smtp-pass"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def run_delivery(instance: DagsterInstance) -> str:
    result = deliver_alerts.execute_in_process(
        instance=instance,
        resources={"app_db": app_database_from_env(), "alert_delivery": alert_delivery_from_env()},
    )
    assert result.success
    return result.run_id


def test_the_job_delivers_the_due_alerts_and_marks_them_sent(
    org: Org, smtp: SmtpCapture, loop: AlertLoop, instance: DagsterInstance
) -> None:
    first, second = org.integration(name="Head office"), org.integration(name="Lettings")
    fail(first, 3)
    fail(second, 3)
    loop.evaluate()
    assert alerts.has_due(db.engine())

    run_id = run_delivery(instance)
    mails = smtp.wait_for(2)
    assert sorted(m.subject for m in mails) == [
        "NurtureHub: Reapit (Head office) has failed to sync 3 times in a row",
        "NurtureHub: Reapit (Lettings) has failed to sync 3 times in a row",
    ]
    assert all(m.rcpt_tos == (OWNER,) for m in mails)
    assert all(row["sent_at"] is not None and row["attempts"] == 1 for row in outbox())
    assert not alerts.has_due(db.engine())
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.tags["nurturehub/service"] == "alert_delivery" and int(run.tags["dagster/priority"]) > 0
    assert any("2 alerts sent, 0 to retry" in (entry.message or "") for entry in instance.all_logs(run_id))

    run_delivery(instance)  # nothing due: a second run sends nothing again
    assert len(smtp.messages) == 2


def test_the_smtp_password_never_reaches_run_config_or_logs(
    org: Org,
    loop: AlertLoop,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SmtpCapture(login=("alerts", PASSWORD)) as smtp:
        monkeypatch.setenv("NURTUREHUB_SMTP_URL", smtp.url)
        assert "smtp_url='NURTUREHUB_SMTP_URL'" in repr(alert_delivery_from_env())  # the name, never the value
        fail(org.integration(), 3)
        loop.evaluate()
        run_id = run_delivery(instance)
        assert len(smtp.wait_for(1)) == 1 and smtp.logins == ["alerts"]  # it logged in with the password

        smtp.login = ("alerts", "another password")  # now a login that fails: its error is logged
        fail(org.integration(name="Lettings"), 3)
        loop.evaluate()
        failed_run = run_delivery(instance)
    assert "SMTPAuthenticationError" in str(outbox()[-1]["last_error"])
    for run in (run_id, failed_run):
        record = instance.get_run_by_id(run)
        assert record is not None
        assert PASSWORD not in json.dumps(record.run_config) + json.dumps(dict(record.tags))
        assert all(PASSWORD not in (entry.message or "") for entry in instance.all_logs(run))
    assert PASSWORD not in caplog.text
    assert PASSWORD not in str(outbox())
