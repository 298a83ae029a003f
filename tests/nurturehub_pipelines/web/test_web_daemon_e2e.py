"""Sync Now end to end: the page's API -> a sync request -> the daemon's sensor -> a real sync run -> the card."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from dagster import DagsterInstance
from sqlalchemy import select, update

from crm_resources.sandbox.control import SandboxControl
from crm_resources.sandbox.credentials import SANDBOX_CREDENTIALS
from crm_resources.sandbox.server import SandboxServer
from nurturehub_pipelines import run_contract
from nurturehub_pipelines.instance import instance_config
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.secrets import encrypt_credentials
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, sync_requests

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

REPO = Path(__file__).resolve().parents[3]
START_WITHIN = 10.0  # DESIGN.md, Timing: a Sync Now starts its run within 10 s while the daemon runs


@pytest.fixture
def daemon(world: World, tmp_path: Path) -> Iterator[SandboxControl]:
    """dagster-daemon on workspace.yaml and an embedded instance, its Street integration on a sandbox."""
    with SandboxServer() as sandbox, SandboxControl(sandbox.root_url) as control:
        control.reset()
        control.dataset("street", contacts=25, leads=15)
        with db.engine(world.db_url).begin() as conn:
            conn.execute(
                update(integrations)
                .where(integrations.c.id == world.a_street)
                .values(credentials_encrypted=encrypt_credentials(SANDBOX_CREDENTIALS["street"]))
            )
        home = tmp_path / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
        env = {**os.environ, **sandbox.base_urls(), "DAGSTER_HOME": str(home)}
        log = (tmp_path / "daemon.log").open("w")
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.environ["DAGSTER_HOME"], previous = str(home), os.environ.get("DAGSTER_HOME")
        try:
            yield control
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            log.close()
            if previous is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous


def wait_for(what: str, timeout: float, probe: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            print("TIMING", what, round(time.monotonic() - (deadline - timeout), 2), flush=True)
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def run_rows(world: World, trigger: str) -> dict[str, Any]:
    with db.engine(world.db_url).connect() as conn:
        rows = conn.execute(
            select(crm_sync_log)
            .where(crm_sync_log.c.integration_id == world.a_street, crm_sync_log.c.trigger == trigger)
            .order_by(crm_sync_log.c.id)
        ).mappings()
        return {row["event_type"]: dict(row) for row in rows if row["run_id"]}


def request_status(world: World, request_id: str) -> str:
    with db.engine(world.db_url).connect() as conn:
        return conn.execute(select(sync_requests.c.status).where(sync_requests.c.id == request_id)).scalar_one()


def card(world: World) -> dict[str, Any]:
    cards = world.client("owner").get("/api/integrations").json()["integrations"]
    return next(c for c in cards if c["id"] == world.a_street)


def test_sync_now_and_retry_run_through_the_daemon(world: World, daemon: SandboxControl) -> None:
    client = world.client("owner")
    answer = client.post(f"/api/integrations/{world.a_street}/sync")
    assert answer.status_code == 202
    request_id = answer.json()["request_id"]
    assert card(world)["sync_in_progress"] is True

    # The first run also waits for the daemon and its code server to start.
    finished = wait_for(
        "the Sync Now run's sync_finished", 120, lambda: run_rows(world, "sync_now").get("sync_finished")
    )
    assert finished["outcome"] == "success", finished
    assert run_rows(world, "sync_now")["contact_import"]["records_affected"] == 25
    wait_for("the request closed by the sensor", 20, lambda: request_status(world, request_id) == "finished")
    after = card(world)
    assert (after["health"], after["sync_in_progress"], after["consecutive_failures"]) == ("green", False, 0)
    run = DagsterInstance.get().get_run_by_id(finished["run_id"])
    assert run is not None and run.job_name == "sync_street"
    assert run.tags[run_contract.TAG_TRIGGER] == "sync_now" and run.tags[run_contract.TAG_REQUEST] == request_id
    assert run.run_config == run_contract.run_config(world.a_street, full=True)

    # Warm now: each further click starts its run within the promised 10 s.
    daemon.fault("street", "unauthorized", times=-1)
    failed = wait_for_sync(world, client, f"/api/integrations/{world.a_street}/sync", "sync_now", finished["id"])
    assert failed["outcome"] == "error"
    failed_card = card(world)
    assert failed_card["health"] == "red" and failed_card["recent_errors"][0]["log_id"] == failed["id"]
    daemon.clear_faults("street")
    retried = wait_for_sync(
        world, client, f"/api/integrations/{world.a_street}/errors/{failed['id']}/retry", "retry", 0
    )
    inst = DagsterInstance.get()
    with db.engine(world.db_url).connect() as conn:
        for r in conn.execute(select(sync_requests)).mappings():
            rec = inst.get_run_record_by_id(r["run_id"]) if r["run_id"] else None
            print("REQ", r["trigger"], r["requested_at"], r["launched_at"], r["finished_at"],
                  rec and rec.create_timestamp, rec and rec.start_time, rec and rec.end_time)
        for r in conn.execute(select(crm_sync_log).where(crm_sync_log.c.integration_id == world.a_street).order_by(crm_sync_log.c.id)).mappings():
            print("LOG", r["occurred_at"], r["trigger"], r["event_type"], r["outcome"])
    assert retried["outcome"] == "success"
    assert card(world)["health"] == "green"


def wait_for_sync(world: World, client: Any, path: str, trigger: str, after_id: int) -> dict[str, Any]:
    """Click, check the run starts within START_WITHIN seconds, and return its sync_finished row."""
    answer = wait_for(
        "a 202 (the previous request closed)", 20, lambda: (a := client.post(path)).status_code == 202 and a
    )
    assert answer.status_code == 202
    clicked = time.monotonic()
    wait_for(
        f"the {trigger} run's first row",
        START_WITHIN,
        lambda: (row := run_rows(world, trigger).get("auth_refresh")) and row["id"] > after_id,
    )
    assert time.monotonic() - clicked <= START_WITHIN
    return wait_for(
        f"the {trigger} run's sync_finished",
        60,
        lambda: (row := run_rows(world, trigger).get("sync_finished")) and row["id"] > after_id and row,
    )
