"""A run launcher whose run workers are forked from a warm process, not started as fresh interpreters.

Dagster's DefaultRunLauncher asks the code server for a run, and the code server spawns a new Python for it:
most of a no-change sync's ~3.3 CPU-seconds go to that interpreter importing Dagster, dagster-postgres and
SQLAlchemy and building the instance before the sync's first request (bench/README.md). Here the daemon
keeps one `multiprocessing` forkserver that has imported those libraries once; each run is a fork of it
(~0.7 CPU-seconds a run). The project's own code is not preloaded: the child imports the code location from
the run's origin, as a spawned worker would, so a reloaded code location is what the next run executes.

A worker is watched as Dagster's code server watches its own: run monitoring asks `check_run_worker_health`,
answered from the worker's pid, kept on the run as a tag with its host, so the webserver (another process
with its own launcher) can terminate it too. Hence one host for the daemon, webserver and run workers: a
deployment across hosts uses its platform's launcher (deploy/dagster.k8s.yaml).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, Self

from dagster import _check as check
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData, deserialize_value, serialize_value

TAG_PID = "nurturehub/run_worker_pid"
TAG_HOST = "nurturehub/run_worker_host"

# Third-party only: what every run worker imports before its first line of sync code.
PRELOAD: tuple[str, ...] = (
    "dagster",
    "dagster._cli.api",
    "dagster._core.execution.api",
    "dagster._core.storage.event_log.sql_event_log",
    "dagster_postgres",
    "sqlalchemy",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "psycopg2",
    "httpx",
    "orjson",
)


def run_worker(instance_ref: str, run_id: str) -> None:
    """The forked child: execute one run as `dagster api execute_run` does, in this warm process."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance, InstanceRef
    from dagster._utils.interrupts import capture_interrupts

    signal.signal(signal.SIGINT, signal.default_int_handler)  # the forkserver ignores SIGINT; a run must not
    with capture_interrupts(), DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef)) as instance:
        instance.add_run_tags(run_id, {TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()})
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, left by a dead forkserver, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class ForkserverRunLauncher(RunLauncher, ConfigurableClass):
    """Launch each run in a fork of a warm forkserver of this (daemon) process."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, preload: Sequence[str] = PRELOAD) -> None:
        self._inst_data = inst_data
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        worker = self._context.Process(
            target=run_worker,
            args=(serialize_value(self._instance.get_ref()), run.run_id),
            name=f"run-worker-{run.run_id[:8]}",
        )
        worker.start()
        self._instance.add_run_tags(run.run_id, {TAG_PID: str(worker.pid), TAG_HOST: socket.gethostname()})
        self._instance.report_engine_event(
            f"Started run worker (pid: {worker.pid}), forked from the daemon's forkserver.", run
        )
        threading.Thread(target=self._watch, args=(worker, run.run_id), name=worker.name, daemon=True).start()

    def _watch(self, worker: BaseProcess, run_id: str) -> None:
        """As Dagster's code server watches the workers it spawns: one that exits before its run has finished
        (killed, out of memory) fails the run at once, not at run monitoring's next poll."""
        worker.join()
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_failed(
                run, f"The run worker (pid {worker.pid}) exited with code {worker.exitcode} before the run finished."
            )

    def _worker_pid(self, run: DagsterRun) -> int | None:
        if run.tags.get(TAG_HOST) != socket.gethostname() or not run.tags.get(TAG_PID):
            return None
        return int(run.tags[TAG_PID])

    def terminate(self, run_id: str) -> bool:
        check.str_param(run_id, "run_id")
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._worker_pid(run)
        if pid is None or not _alive(pid):
            self._instance.report_engine_event("No live run worker to send the termination to.", run)
            return False
        os.kill(pid, signal.SIGINT)  # the worker's capture_interrupts turns it into a clean cancellation
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self._worker_pid(run)
        if pid is None:
            # Not forked by this launcher on this host (`nurturehub sync` runs in process and beats instead,
            # heartbeat.py): run monitoring fails a run whose status is not RUNNING, and Dagster's own
            # launcher, which has no health check, never had such runs failed for it.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not a run worker forked on this host")
        if _alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) exited without finishing the run")
