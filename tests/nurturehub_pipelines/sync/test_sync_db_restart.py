"""A real PostgreSQL restart in the middle of a `nurturehub sync` (issue 11): the sync reconnects and
completes with every record stored exactly once. PostgreSQL pass only.

The cluster is restarted with `NURTUREHUB_TEST_PG_STOP` / `NURTUREHUB_TEST_PG_START` (shell commands),
by default `pg_ctlcluster` on the machine's one cluster as CI runs it; it is always started again, whatever
happens. Point them (and NURTUREHUB_TEST_PG_URL) at a throw-away cluster to run this beside other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log
from tests.conftest import PG_ADMIN_URL

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

pytestmark = pytest.mark.skipif(
    os.environ.get("NURTUREHUB_TEST_DB") != "postgres", reason="a PostgreSQL restart: PostgreSQL pass only"
)

REPO = Path(__file__).resolve().parents[3]
CLUSTER = "--skip-systemctl-redirect $(ls /etc/postgresql) main"
STOP = os.environ.get("NURTUREHUB_TEST_PG_STOP", f"pg_ctlcluster {CLUSTER} stop")
START = os.environ.get("NURTUREHUB_TEST_PG_START", f"pg_ctlcluster {CLUSTER} start")
DOWN_SECONDS = 6.0  # inside the promise of "a restart of up to 10 s", with the stop and start on top
CONTACTS, LEADS = 3000, 300


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The shared fixture's database, made and dropped without pooling: a pooled admin connection would
    not survive the restart this test makes."""
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "test-secret-key")
    name = f"nh_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("NURTUREHUB_DATABASE_URL", url)
    db.upgrade(url)
    yield url
    db.engine(url).dispose()
    db._engine_for.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_until_ready(timeout: float = 60.0) -> None:
    port = make_url(PG_ADMIN_URL).port or 5432
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)], check=False).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


@pytest.mark.parametrize("crm", ["street"])
@pytest.mark.timeout(400)
def test_a_postgresql_restart_mid_sync_loses_and_duplicates_nothing(harness: Harness, tmp_path: Path) -> None:
    harness.control.dataset("street", contacts=CONTACTS, leads=LEADS)
    # 30 pages of people at 0.4 s each: the restart lands mid-stream.
    harness.control.fault("street", kind="delay", seconds=0.4, stream="contacts", times=-1)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurturehub_pipelines.cli", "sync", str(harness.integration_id), "--full"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while (stored := harness.count("contacts")) == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sync never committed a page"
            time.sleep(0.1)
        db.engine().dispose()  # this test's own connections would only be refused while it is down
        try:
            subprocess.run(STOP, shell=True, check=True, capture_output=True, timeout=60)
            time.sleep(DOWN_SECONDS)
        finally:
            subprocess.run(START, shell=True, check=False, capture_output=True, timeout=60)
            wait_until_ready()
        assert proc.poll() is None, "the sync had ended before the restart: nothing was tested"
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert 0 < stored < CONTACTS
    assert proc.returncode == 0, err[-4000:]
    summary = json.loads(out)
    assert summary["outcome"] == "success", summary
    retries = err.count("app database unavailable")
    assert retries > 0  # it did meet the restart, and rode it out
    print(f"PostgreSQL down {DOWN_SECONDS:g} s mid-sync after {stored} contacts: {retries} retries, then success")
    assert harness.count("contacts") == harness.distinct_ids("contacts") == CONTACTS
    assert harness.count("leads") == harness.distinct_ids("leads") == LEADS
    with db.engine().connect() as conn:
        events = conn.execute(
            select(crm_sync_log.c.event_type).where(crm_sync_log.c.run_id == summary["run_id"])
        ).scalars()
        assert sorted(events) == ["auth_refresh", "contact_import", "lead_update", "sync_finished"]
