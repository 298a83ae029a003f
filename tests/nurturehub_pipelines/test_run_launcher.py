"""The forkserver run launcher (dagster.yaml's `run_launcher`) through a real daemon and webserver: a run
launched from the queue is a fork of the daemon's forkserver, the webserver's Terminate (GraphQL, as the
UI's button) cancels it, and a run whose worker is killed is failed at once, its worker reported dead to
run monitoring (which fails such runs after a daemon restart)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines import run_contract
from nurturehub_pipelines.instance import instance_config
from nurturehub_pipelines.run_launcher import TAG_HOST, TAG_PID, ForkserverRunLauncher
from nurturehub_pipelines.store import accounts, db
from tests.support.daemon import REPO, dagster_daemon, wait_for
from tests.support.smtp_capture import free_port

OWNER = "owner@harbour.example"


@dataclass
class Deployment:
    instance: DagsterInstance
    graphql: DagsterGraphQLClient
    control: SandboxControl
    integration_id: int
    org_id: int
    daemon_pid: int

    def submit(self) -> str:
        return self.graphql.submit_job_execution(
            "sync_street",
            run_config=run_contract.run_config(self.integration_id, False),
            tags=run_contract.run_tags(self.integration_id, self.org_id, "street", "manual"),
        )


def status(instance: DagsterInstance, run_id: str) -> DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run else None


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def worker_pid(instance: DagsterInstance, run_id: str) -> int:
    """The run worker's pid, once the run has started (so a signal now reaches a running sync)."""

    def started() -> int | None:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status != DagsterRunStatus.STARTED or TAG_PID not in run.tags:
            return None
        return int(run.tags[TAG_PID])

    return wait_for(f"run {run_id} started", 90, started)


@pytest.fixture
def deployment(db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """The daemon and the webserver on one embedded instance, with a Street integration whose contacts hang
    (a 30 s delay on every page)."""
    with SandboxServer() as sandbox, SandboxControl(sandbox.root_url) as control:
        control.reset()
        control.dataset("street", contacts=10, leads=5)
        control.fault("street", "delay", stream="contacts", times=-1, seconds=30)
        with db.engine().begin() as conn:
            org = accounts.create_org(conn, "Harbour Lettings", OWNER)["org_id"]
            integration = accounts.add_integration(conn, org, "street", "Lettings", {}, SANDBOX_CREDENTIALS["street"])
        home = tmp_path / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config()))
        env = {**os.environ, **sandbox.base_urls(), "DAGSTER_HOME": str(home)}
        port = free_port()
        webserver_log = (tmp_path / "webserver.log").open("wb")
        webserver = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=webserver_log,
            stderr=subprocess.STDOUT,
        )
        try:
            with (
                dagster_daemon(["-w", "workspace.yaml"], env, tmp_path / "daemon.log") as daemon,
                DagsterInstance.from_config(str(home)) as instance,
            ):

                def serving() -> bool:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                            return True
                    except OSError:
                        assert webserver.poll() is None, (tmp_path / "webserver.log").read_text()
                        return False

                wait_for("the webserver", 120, serving)
                graphql = DagsterGraphQLClient("127.0.0.1", port_number=port)
                yield Deployment(instance, graphql, control, integration, org, daemon.pid)
        finally:
            webserver.terminate()
            webserver.wait(timeout=30)
            webserver_log.close()


def test_the_webservers_terminate_cancels_a_run_forked_from_the_daemon(deployment: Deployment) -> None:
    run_id = deployment.submit()
    pid = worker_pid(deployment.instance, run_id)
    forkserver = parent_of(pid)
    assert forkserver != deployment.daemon_pid and parent_of(forkserver) == deployment.daemon_pid

    deployment.graphql.terminate_run(run_id)  # what the UI's Terminate button sends

    wait_for("the run canceled", 60, lambda: status(deployment.instance, run_id) == DagsterRunStatus.CANCELED)
    assert wait_for("the worker gone", 30, lambda: not alive(pid))


def test_a_killed_run_worker_fails_its_run_at_once(deployment: Deployment) -> None:
    run_id = deployment.submit()
    pid = worker_pid(deployment.instance, run_id)
    run = deployment.instance.get_run_by_id(run_id)
    assert run is not None
    launcher = deployment.instance.run_launcher
    assert isinstance(launcher, ForkserverRunLauncher)
    assert launcher.check_run_worker_health(run).status.value == "RUNNING"

    os.kill(pid, signal.SIGKILL)

    # The daemon's launcher watches the fork (run monitoring polls only every 30 s).
    wait_for("the run failed", 20, lambda: status(deployment.instance, run_id) == DagsterRunStatus.FAILURE)
    assert launcher.check_run_worker_health(run).status.value == "FAILED"  # as run monitoring would see it


def test_a_run_it_did_not_fork_is_never_reported_dead() -> None:
    """`nurturehub sync` runs in process (it beats instead): run monitoring must leave such a run alone."""
    launcher = ForkserverRunLauncher()
    in_process = DagsterRun(job_name="sync_street", run_id="in-process", status=DagsterRunStatus.STARTED)
    elsewhere = in_process.with_tags({TAG_PID: "1", TAG_HOST: "another-host"})

    assert launcher.check_run_worker_health(in_process).status.value == "RUNNING"
    assert launcher.check_run_worker_health(elsewhere).status.value == "RUNNING"
