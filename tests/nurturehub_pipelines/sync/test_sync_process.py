"""`nurturehub sync` as a real process: killed mid-sync loses nothing; no secret ever leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, text

from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

REPO = Path(__file__).resolve().parents[3]
LEADS = 230
KILL_CONTACTS = 600  # three pages even at Alto's 250, two endpoints of one page each at agentOS


def sync_process(h: Harness, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    return subprocess.Popen(
        [sys.executable, "-m", "nurturehub_pipelines.cli", "sync", str(h.integration_id), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_killed_mid_sync_then_run_again_loses_and_duplicates_nothing(harness: Harness, tmp_path: Path) -> None:
    harness.control.dataset(harness.crm, contacts=KILL_CONTACTS, leads=LEADS)
    # Every contacts page takes a second, and there are at least three: the kill lands mid-stream.
    harness.control.fault(harness.crm, kind="delay", seconds=1.0, stream="contacts", times=-1)
    proc = sync_process(harness, tmp_path, "--full")
    deadline = time.monotonic() + 60
    while harness.count("contacts") == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sync never committed a page"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stored_before = harness.count("contacts")
    assert 0 < stored_before < KILL_CONTACTS

    harness.control.clear_faults(harness.crm)
    result = harness.sync(full=True)

    assert result["sync_finished"]["outcome"] == "success"
    assert harness.count("contacts") == harness.distinct_ids("contacts") == KILL_CONTACTS
    assert harness.count("leads") == harness.distinct_ids("leads") == LEADS
    assert result["contact_import"]["records_affected"] == KILL_CONTACTS - stored_before


def test_no_credential_reaches_logs_the_sync_log_cli_output_or_run_config(
    harness: Harness, tmp_path: Path, crm_env: dict[str, str]
) -> None:
    harness.control.dataset(harness.crm, contacts=120, leads=40)
    proc = sync_process(harness, tmp_path, "--full")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    harness.control.fault(harness.crm, kind="unauthorized", times=-1)
    bad = sync_process(harness, tmp_path)  # and a failing one: its error message must not echo a secret
    bad_out, bad_err = bad.communicate(timeout=120)

    secrets = {v for v in SANDBOX_CREDENTIALS[harness.crm].values() if len(v) > 8 and v != "sandbox"}
    secrets |= {v for k, v in crm_env.items() if k.endswith("_SECRET")}
    secrets -= {SANDBOX_CREDENTIALS["alto"]["agency_ref"], "SBOX"}  # settings, not secrets
    with db.engine().connect() as conn:
        log_rows = json.dumps([dict(r) for r in conn.execute(select(crm_sync_log)).mappings()], default=str)
        skipped = json.dumps([list(r) for r in conn.execute(text("SELECT * FROM skipped_records"))], default=str)
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = str(tmp_path / "dagster")
    try:
        with DagsterInstance.get() as instance:
            run = instance.get_run_by_id(summary["run_id"])
            assert run is not None
            run_config = json.dumps(run.run_config)
            events = json.dumps([str(e) for e in instance.all_logs(summary["run_id"])])
    finally:
        del os.environ["DAGSTER_HOME"]
    dagster_files = b"".join(p.read_bytes() for p in (tmp_path / "dagster").rglob("*") if p.is_file())
    for secret in secrets:
        for where, blob in {
            "stdout": out + bad_out,
            "stderr": err + bad_err,
            "crm_sync_log": log_rows,
            "skipped_records": skipped,
            "run config": run_config,
            "event log": events,
        }.items():
            assert secret not in blob, f"{secret!r} leaked into {where}"
        assert secret.encode() not in dagster_files, f"{secret!r} leaked into DAGSTER_HOME"
    assert "reconnect" in bad_out.lower()
