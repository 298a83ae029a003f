"""The alert path as it runs in production: `dagster-daemon` on workspace.yaml ticks `alert_sensor`, whose
`deliver_alerts` run goes through the run queue to a run worker, which emails the owner."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance, RunsFilter

from nurturehub_pipelines.instance import instance_config
from tests.support.alert_world import OWNER, Org, fail, outbox
from tests.support.daemon import dagster_daemon
from tests.support.smtp_capture import SmtpCapture

PROMISE = 60.0  # DESIGN.md, Timing: an alert leaves within 60 s of the third failure finishing


def test_the_daemon_delivers_the_third_failure_within_the_promise(org: Org, smtp: SmtpCapture, tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
    integration = org.integration()
    fail(integration, 2)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dagster_daemon(["-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
        time.sleep(10)  # the daemon starts and the sensor has evaluated the first two failures
        fail(integration)
        third = time.monotonic()
        [mail] = smtp.wait_for(1, timeout=PROMISE)
        assert mail.rcpt_tos == (OWNER,) and "3 times in a row" in mail.subject
        assert mail.at - third < PROMISE
        time.sleep(6)  # another tick: nothing more is sent
        assert len(smtp.messages) == 1 and outbox()[0]["sent_at"] is not None
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(job_name="deliver_alerts"))
    assert len(runs) == 1 and runs[0].tags["nurturehub/service"] == "alert_delivery"
