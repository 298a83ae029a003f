"""What every benchmark shares: the machine it ran on, throwaway databases, a sandbox in its own process,
child processes whose peak RSS we read, and the JSON result files run_all turns into the README table.

The sandbox and every measured sync run in processes of their own, so the figures are those of a
deployment (CRM, worker and database side by side on one machine), not of one process juggling all three.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# git-ignored: raw JSON, profiles, logs (the smoke test points this elsewhere)
RESULTS = Path(os.environ.get("NURTUREHUB_BENCH_RESULTS") or REPO / "bench" / "results")
PG_ADMIN_URL = os.environ.get("NURTUREHUB_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
PYTHON = sys.executable


def results_dir() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


def write_result(name: str, data: Mapping[str, Any]) -> Path:
    """bench/results/<name>.json, what run_all reads to write the table; also said on stderr, printed on stdout."""
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    log(f"wrote {path}")
    print(json.dumps(data, indent=2, default=str))
    return path


def log(message: str) -> None:
    """Progress on stderr, so stdout stays free for a child's JSON answer."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine ------------------------------------------------------------------------------


def _meminfo_gib() -> float:
    text = Path("/proc/meminfo").read_text()
    kib = int(re.search(r"MemTotal:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return round(kib / 1024 / 1024, 1)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def pg_version(url: str = PG_ADMIN_URL) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


PROBE_LOOPS = 1_000_000


def cpu_probe_ms() -> float:
    """A fixed pure-Python loop, best of 3, in ms: how fast this core is now. The load average says whether
    the machine was quiet; this says how fast it was, which on the cloud machines here varies up to ~2x
    within a session (a sync took 3.8 s at a session's start and 7.6 s after an hour of benchmarks)."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(PROBE_LOOPS):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def machine() -> dict[str, Any]:
    """What a figure was measured on; the load average says how quiet the machine was, the CPU probe how
    fast it was."""
    return {
        "nproc": os.cpu_count(),
        "memory_gib": _meminfo_gib(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "postgresql": pg_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpu_probe_ms": cpu_probe_ms(),
    }


# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th): no interpolation flattering the tail."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


# --- databases --------------------------------------------------------------------------------


@contextmanager
def pg_database(prefix: str = "nh_bench") -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        from nurturehub_pipelines.store import db

        db._engine_for.cache_clear()  # engines on the dropped database must not be reused
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def app_env(database_url: str, home: Path) -> dict[str, str]:
    """The settings a NurtureHub process needs, pointed at this bench's own database and home."""
    return {
        "NURTUREHUB_DATABASE_URL": database_url,
        "NURTUREHUB_HOME": str(home),
        "NURTUREHUB_SECRET_KEY": "bench-secret-key",
    }


# --- the CRM sandbox --------------------------------------------------------------------------


SANDBOX_MAIN = "from crm_sandbox.server import serve_forever; serve_forever(port={port})"


@dataclass
class Sandbox:
    root_url: str
    urls: dict[str, str]
    process: subprocess.Popen[str]

    def crm_env(self) -> dict[str, str]:
        """The env of a deployment pointed at this sandbox: base URLs and NurtureHub's app credentials."""
        from crm_sandbox.credentials import SANDBOX_CREDENTIALS

        env = {k: v for k, v in self.urls.items() if k != "OPENAPI_BASE_URL"}
        for crm in ("reapit", "alto"):
            env[f"{crm.upper()}_CLIENT_ID"] = SANDBOX_CREDENTIALS[crm]["client_id"]
            env[f"{crm.upper()}_CLIENT_SECRET"] = SANDBOX_CREDENTIALS[crm]["client_secret"]
        return env


@contextmanager
def sandbox_process(port: int = 0) -> Iterator[Sandbox]:
    """`serve_forever` in a child process (its own GIL, as the CRM would be): the bench only talks HTTP."""
    process = subprocess.Popen(
        [PYTHON, "-c", SANDBOX_MAIN.format(port=port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        root = urls["REAPIT_BASE_URL"].rsplit("/", 1)[0]
        _wait_until_serving(f"{root}/_sandbox/reapit/faults", process)
        yield Sandbox(root, urls, process)
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """A server process of a benchmark's: asked to stop, killed if it has not within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_serving(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """serve_forever prints its URLs when the socket is bound, a moment before uvicorn accepts."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- child processes --------------------------------------------------------------------------


@dataclass
class ChildResult:
    answer: dict[str, Any]
    wall_seconds: float


def run_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    stderr: Path | None = None,
    timeout: float = 3600,
    cwd: Path = REPO,
) -> ChildResult:
    """Run a child to completion; its stdout's last line is one JSON object (its answer).

    Its stderr (Dagster's event log lines) goes to `stderr` when given. Peak RSS is the child's own VmHWM:
    wait4's ru_maxrss is no use here, as Linux folds the forking parent's high-water mark into the
    child's at exec, so every child would report at least this (Dagster-importing) parent's size.
    """
    started = time.monotonic()
    with open(stderr, "ab") if stderr else open(os.devnull, "wb") as err:
        process = subprocess.run(
            list(argv), cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=err, timeout=timeout
        )
    wall = time.monotonic() - started
    text = process.stdout.decode().strip()
    try:
        answer = json.loads(text.splitlines()[-1]) if text else {}
    except json.JSONDecodeError:
        answer = {"unparsed_stdout": text[-2000:]}
    if process.returncode != 0:
        where = f" (stderr: {stderr})" if stderr else ""
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}{where}: {answer}")
    return ChildResult(answer, wall)


def vm_hwm_mb() -> float:
    """This process's peak RSS as the kernel reports it (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def emit(answer: Mapping[str, Any]) -> None:
    """A child's answer: one JSON line on stdout."""
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
