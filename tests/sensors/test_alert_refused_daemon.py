"""Issue 11, item 1 through the real daemon: one organisation's bad data never silences another's alert.

Two organisations cross their 3rd failure together. One owner's address is refused by the SMTP server
(550); the other's integration name holds CR/LF, written by another writer past the input rules. The
second's email still arrives within the promise, the refused one is marked with its reason, and it is not
resent in a loop.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml
from sqlalchemy import update

from nurturehub_pipelines.instance import instance_config
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import integrations
from tests.support.alert_world import OWNER, Org, fail, outbox
from tests.support.daemon import dagster_daemon
from tests.support.smtp_capture import SmtpCapture

PROMISE = 60.0  # DESIGN.md, Timing: an alert leaves within 60 s of the third failure finishing
REFUSED = "nobody@quay.example"


def test_a_refused_recipient_fails_alone_and_is_not_resent(org: Org, smtp: SmtpCapture, tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
    harbour = org.integration()
    with db.engine().begin() as conn:
        quay_org = accounts.create_org(conn, "Quay Estates", REFUSED)
        quay = accounts.add_integration(conn, quay_org["org_id"], "reapit", "Reapit", {}, {})
        conn.execute(update(integrations).where(integrations.c.id == harbour).values(name="Head\r\noffice\nBcc: x@y"))
    smtp.refuse_recipients = {REFUSED}
    fail(quay, 2)
    fail(harbour, 2)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dagster_daemon(["-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
        time.sleep(10)  # the daemon starts and the sensor has evaluated the first two failures
        fail(quay)
        fail(harbour)
        third = time.monotonic()
        [mail] = smtp.wait_for(1, timeout=PROMISE)
        assert mail.rcpt_tos == (OWNER,) and mail.at - third < PROMISE
        assert "Head office" in mail.subject and "\n" not in mail.subject
        time.sleep(25)  # a retry loop would have tried the refused address again by now (5 s, 10 s, ...)
        rows = {row["integration_id"]: row for row in outbox()}
    assert len(smtp.messages) == 1
    refused = rows[quay]
    assert refused["sent_at"] is None and refused["attempts"] == 1
    assert "550" in str(refused["last_error"]) and "Not retried" in str(refused["last_error"])
    assert rows[harbour]["sent_at"] is not None
