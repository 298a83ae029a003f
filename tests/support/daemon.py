"""A real `dagster-daemon` for a test or a bench, and stopping it with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nurturehub_pipelines.instance import initialize_storage

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def dagster_daemon(target: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dagster-daemon run <target>` from the repo root, its output in `log`.

    It runs in a session of its own, so stopping it (SIGTERM, then SIGKILL after 30 s) also stops its code
    servers and run workers. A new home's storage is created first: the daemon and the test would race to.
    """
    if home := env.get("DAGSTER_HOME"):
        initialize_storage(Path(home))
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", *target],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield daemon
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)


def wait_for(what: str, timeout: float, probe: Callable[[], Any], every: float = 0.5) -> Any:
    """Poll `probe` until it returns something true (returned), or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")
