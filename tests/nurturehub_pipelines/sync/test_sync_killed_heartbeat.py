"""A SIGKILLed `nurturehub sync` with a real `dagster-daemon` running (issue 11, DESIGN "A killed sync"): its
run is marked failed and gets its `sync_finished`/`error` row within 5 minutes, so no card says "syncing".

The run has no run worker for run monitoring to watch; it beats (`NURTUREHUB_HEARTBEAT_SECONDS`, shortened
to 2 s here, so the daemon's run_outcome_sensor fails it after 4 missed beats, 8 s, instead of 2 minutes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy import select

from nurturehub_pipelines.instance import instance_config
from nurturehub_pipelines.read_model import sync_in_progress
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log
from nurturehub_pipelines.sync import heartbeat
from sensors.run_outcomes import DIED_MESSAGE
from tests.support.daemon import dagster_daemon

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

REPO = Path(__file__).resolve().parents[3]
PROMISE = 300.0  # DESIGN.md: within 5 minutes while the daemon runs


def finished(run_id: str) -> dict[str, object] | None:
    with db.engine().connect() as conn:
        row = (
            conn.execute(
                select(crm_sync_log).where(
                    crm_sync_log.c.run_id == run_id, crm_sync_log.c.event_type == "sync_finished"
                )
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None


@pytest.mark.parametrize("crm", ["street"])
@pytest.mark.timeout(600)
def test_a_killed_nurturehub_sync_is_failed_with_its_row_while_the_daemon_runs(
    harness: Harness, tmp_path: Path
) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
    harness.control.dataset("street", contacts=600, leads=20)
    harness.control.fault("street", kind="delay", seconds=30, stream="contacts", times=-1)  # hangs on people
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with (
        dagster_daemon(["-w", "workspace.yaml"], env, tmp_path / "daemon.log"),
        (tmp_path / "sync.err").open("wb") as sync_err,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "nurturehub_pipelines.cli", "sync", str(harness.integration_id)],
            cwd=REPO,
            env={**env, heartbeat.HEARTBEAT_SECONDS_ENV: "2"},
            stdout=subprocess.DEVNULL,
            stderr=sync_err,
            start_new_session=True,
        )
        with DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + 120
            run = None
            while run is None or not any(r["event_type"] == "auth_refresh" for r in rows(run.run_id)):
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"the sync never started: {(tmp_path / 'sync.err').read_text()[-3000:]}"
                )
                time.sleep(0.2)
                runs = instance.get_runs(filters=RunsFilter(job_name="sync_street"))
                run = runs[0] if runs else None
            time.sleep(5)  # a few beats: the heartbeat thread runs
            beaten = instance.get_run_by_id(run.run_id)
            assert beaten is not None and beaten.status == DagsterRunStatus.STARTED
            assert beaten.tags[heartbeat.TAG_HEARTBEAT] != run.tags[heartbeat.TAG_HEARTBEAT]
            with db.engine().connect() as conn:
                assert sync_in_progress(conn, harness.integration_id, datetime.now(UTC))

            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            killed = time.monotonic()
            while (row := finished(run.run_id)) is None:
                assert time.monotonic() - killed < PROMISE, "no sync_finished row within 5 minutes"
                time.sleep(1)
            took = time.monotonic() - killed
            ended = instance.get_run_by_id(run.run_id)
    assert ended is not None and ended.status == DagsterRunStatus.FAILURE
    assert (row["outcome"], row["message"]) == ("error", DIED_MESSAGE)
    assert took < PROMISE
    print(f"killed nurturehub sync: FAILURE with its sync_finished/error row {took:.1f} s after SIGKILL")
    with db.engine().connect() as conn:
        assert not sync_in_progress(conn, harness.integration_id, datetime.now(UTC))


def rows(run_id: str) -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        query = select(crm_sync_log).where(crm_sync_log.c.run_id == run_id)
        return [dict(r) for r in conn.execute(query).mappings()]
