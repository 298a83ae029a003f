"""Dagster overhead: a scheduled sync with nothing changed, from submit to SUCCESS through a real daemon.

    python -m bench.dagster_overhead [--runs 10] [--batch 10] [--storage postgres|sqlite]
    python -m bench.dagster_overhead --fleet 1000 [--contacts 100 --leads 50] [--submit] [--out dagster_fleet]
    python -m bench.dagster_overhead --imports [--repeat 5] [--out dagster_imports]

Set-up: a fresh DAGSTER_HOME whose dagster.yaml is the project's (`instance_config()`: QueuedRunCoordinator
with its tag limits, run monitoring, no run retries) on PostgreSQL storage (as the repo's dagster.yaml) or the
embedded SQLite; `dagster-daemon run -w workspace.yaml` (the real code location, its sensors included; the
schedule's cron is moved to 1 January so it cannot fire mid-bench); a Reapit sandbox at its published rate;
integrations already fully synced, so an incremental sync finds nothing new (the 5-minute look-back re-reads
a few records and writes none).

Measured:
- latency: `--runs` runs submitted one at a time (instance.submit_run through the QueuedRunCoordinator, as the
  schedule's runs are), each timed from submit until the run storage says SUCCESS, with the run's own events
  (RUN_ENQUEUED, RUN_DEQUEUED, RUN_STARTING, RUN_START, RUN_SUCCESS) splitting the time; after one warm-up run;
- throughput: `--batch` runs of different integrations submitted at once (the queue lets 5 Reapit runs go at a
  time), timed until the last one succeeds, with the CPU seconds the daemon's process tree (daemon, code
  server, run workers) spent meanwhile;
- capacity per 4-hour cycle: concurrency x 4 h / per-run latency, bounded by cores x 4 h / CPU seconds per run,
  and the measured throughput x 4 h.

`--fleet N`: N integrations of one CRM, already synced, and the schedule's real tick: the sync schedules' cron
is set to one minute a little after the daemon starts, so the daemon's scheduler evaluates
`sync_reapit_schedule` once and submits N runs through the queue, as every 4 hours in production. Measured:
from the tick's scheduled time (and from the first run's creation) to the last run's success; the CPU
seconds of the daemon's process tree (daemon, code server, run workers), the sandbox's, and PostgreSQL's
(every `postgres` process on the machine) meanwhile, per run; how many runs ran at once; and how close the
wall time is to `runs x CPU seconds per run / cores`, the time the cores alone would take. The sandbox's rate
limit is lifted here: it keeps one limit for every customer, where Reapit's is per customer and a run keeps
within its own customer's by its client's limiter. `--submit` (the smoke run) skips the wait for the tick:
the bench evaluates the schedule's own function and submits its runs through the queue, as the scheduler does.

`--imports`: what a run worker imports: `python -X importtime -c "import nurturehub_pipelines.definitions"`
and the same after `import dagster._grpc.impl` (the run worker is the code server's spawn child, which
unpickles `start_run_in_subprocess` from there and then loads the code location), `--repeat` times each in a
fresh process; the raw outputs of the last go to bench/results/<out>_*.importtime.txt, with the per-package
totals and the process's CPU seconds in <out>.json.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import text

from bench.common import (
    PYTHON,
    REPO,
    app_env,
    log,
    machine,
    pg_database,
    results_dir,
    sandbox_process,
    write_result,
)
from crm_sandbox.control import SandboxControl
from nurturehub_pipelines.instance import instance_config, max_concurrent_syncs, postgres_storage
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db

CRM = "reapit"
CYCLE_SECONDS = 4 * 3600
NEVER = "0 0 1 1 *"  # the schedule's cron while benchmarking: no scheduled tick may land mid-run
TARGET_SECONDS = 3.0  # issue 12: median submit -> success of a no-change scheduled sync
EVENTS = ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS")


# --- set-up -----------------------------------------------------------------------------------


def seed(database_url: str, sandbox_env: dict[str, str], count: int) -> tuple[int, list[int]]:
    """`count` Reapit integrations of one organisation, each as if fully synced once (same rows, same cursor)."""
    db.upgrade(database_url)
    engine = db.engine(database_url)
    with engine.begin() as conn:
        org = accounts.create_org(conn, "Bench Lettings", "owner@bench.example")["org_id"]
        ids = [
            accounts.add_integration(conn, org, CRM, f"Reapit {n}", {"customer_id": "SBOX"}, {}) for n in range(count)
        ]
    saved = dict(os.environ)
    os.environ.update(sandbox_env)
    try:
        from dagster import DagsterInstance

        from crm_resources.registry import resource_from_env
        from nurturehub_pipelines.jobs import build_sync_job
        from nurturehub_pipelines.sync.ops import CRM_KEY

        with DagsterInstance.ephemeral() as instance:
            result = build_sync_job(CRM).execute_in_process(
                run_config={**run_config(ids[0], True), "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                tags=run_tags(ids[0], org, CRM, "manual"),
                resources={CRM_KEY: resource_from_env(CRM)},
                instance=instance,
            )
            assert result.success
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with engine.begin() as conn:
        for table in ("contacts", "leads"):
            columns = [c for c in db_columns(conn, table) if c not in ("id", "integration_id")]
            listed = ", ".join(columns)
            conn.execute(
                text(
                    f"INSERT INTO {table} (integration_id, {listed}) SELECT i, {listed} FROM {table}, "
                    f"unnest(CAST(:ids AS integer[])) AS i WHERE integration_id = :first"
                ),
                {"ids": ids[1:], "first": ids[0]},
            )
        conn.execute(
            text(
                "INSERT INTO sync_cursors (integration_id, stream, high_water, updated_at) "
                "SELECT i, stream, high_water, updated_at FROM sync_cursors, unnest(CAST(:ids AS integer[])) AS i "
                "WHERE integration_id = :first"
            ),
            {"ids": ids[1:], "first": ids[0]},
        )
    return org, ids


def db_columns(conn: Any, table: str) -> list[str]:
    rows = conn.execute(
        text("SELECT column_name FROM information_schema.columns WHERE table_name = :t ORDER BY ordinal_position"),
        {"t": table},
    )
    return [row[0] for row in rows]


def write_instance(home: Path, storage: str, dagster_db_url: str | None, launcher: str = "forkserver") -> None:
    config: dict[str, Any] = {}
    if storage == "postgres":  # as the repo's dagster.yaml: dagster-postgres, pooled per process
        config["storage"] = postgres_storage({"postgres_url": dagster_db_url})
    elif storage == "dagster-postgres":  # plain dagster-postgres (a connection per storage call), to compare
        config["storage"] = {"postgres": {"postgres_url": dagster_db_url}}
    config.update(instance_config())
    if launcher == "dagster":  # Dagster's DefaultRunLauncher (a fresh interpreter per run), to compare
        del config["run_launcher"]
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def daemon(env: dict[str, str], log_path: Path, py_spy: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """dagster-daemon in its own process group; under `py-spy record --subprocesses` when profiling, so the
    code server and every run worker it spawns are sampled too."""
    command = [str(Path(PYTHON).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"]
    if py_spy:
        spy = Path(PYTHON).with_name("py-spy")
        command = [str(spy), "record", "--subprocesses", "-f", "raw", "-r", "250", "-o", str(py_spy), "--", *command]
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            # SIGINT: the daemon shuts down, and py-spy (if there) writes its samples once it has exited.
            os.killpg(process.pid, signal.SIGINT if py_spy else signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            # The daemon's code server can outlive it (seen: still serving, orphaned, half an hour later):
            # whatever is left of the process group goes.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def summarise_py_spy(raw: Path, runs: int) -> dict[str, Any]:
    """Where a run worker's CPU goes, from py-spy's collapsed stacks (250 samples/s of active threads).

    Run workers are the code server's multiprocessing (spawn) children; each of their samples is put in the
    first bucket whose frame it contains, in this order.
    """
    buckets = (
        ("importing modules (the code location, Dagster, SQLAlchemy, httpx ...)", "_find_and_load ("),
        ("Dagster storage writes (events, run status)", "dagster/_core/storage"),
        ("the sync itself (ops, CRM client, app database)", "nurturehub_pipelines/"),
        ("the sync itself (ops, CRM client, app database)", "crm_resources/"),
        ("Dagster machinery (building the job, plan and instance; executing steps)", "dagster/"),
    )
    per_bucket: dict[str, int] = {}
    totals = {"run workers": 0, "code server": 0, "daemon": 0}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        # Each stack starts with a `process PID:"command line"` frame for every process down the tree.
        samples = int(count)
        if "multiprocessing-fork" in stack:  # a run worker: a spawn child of the code server
            totals["run workers"] += samples
            label = next((name for name, frame in buckets if frame in stack), "other")
            per_bucket[label] = per_bucket.get(label, 0) + samples
        elif "dagster api grpc" in stack:
            totals["code server"] += samples
        else:
            totals["daemon"] += samples
    return {
        "runs": runs,
        "run_worker_cpu_s_per_run": round(totals["run workers"] / 250 / runs, 2),
        # Not per run: the daemon's start-up and workspace load, and its sensors ticking all along.
        "session_cpu_s": {name: round(n / 250, 1) for name, n in totals.items()},
        "run_worker_split_per_run_s": {
            name: round(n / 250 / runs, 2) for name, n in sorted(per_bucket.items(), key=lambda kv: -kv[1])
        },
        "raw": str(raw),
    }


# --- CPU of a process tree --------------------------------------------------------------------


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of every live process under `root`, plus cutime+cstime: the CPU of the children they have
    reaped (the code server reaps its run workers), so finished run workers are counted too."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(v) for v in fields[11:15])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def tree_cpu_by_role(root: int) -> dict[str, float]:
    """The daemon's own CPU seconds so far, and its children's: the code servers and their run workers, live
    or reaped. (Not split further: the daemon starts a new code server every ~65 s, its workspace refresh, and
    an old one's run workers are reaped into it, then it into the daemon; `--py-spy` splits the run worker.)"""
    tick = os.sysconf("SC_CLK_TCK")
    with suppress(OSError):
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        return {"daemon": own, "code_servers_and_run_workers": tree_cpu_seconds(root) - own}
    return {"daemon": 0.0, "code_servers_and_run_workers": 0.0}


PG_STATS = ("sessions", "xact_commit", "tup_returned", "tup_inserted", "active_time")


def pg_database_stats(url: str | None) -> dict[str, float]:
    """The Dagster database's counters (pg_stat_database): new connections, statements, rows read, time
    executing statements (ms)."""
    if url is None:
        return {}
    from sqlalchemy import create_engine

    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres")
    try:
        with admin.connect() as conn:
            row = conn.execute(
                text(f"SELECT {', '.join(PG_STATS)} FROM pg_stat_database WHERE datname = :name"),
                {"name": url.rsplit("/", 1)[1]},
            ).one()
    finally:
        admin.dispose()
    return {name: float(value) for name, value in zip(PG_STATS, row, strict=True)}


# --- submitting -------------------------------------------------------------------------------


class Submitter:
    """Creates and submits runs the way the schedule's do, from the code location loaded in this process."""

    def __init__(self, stack: ExitStack) -> None:
        from dagster import DagsterInstance
        from dagster._cli.workspace.cli_target import (
            get_code_location_from_workspace,
            get_remote_repository_from_code_location,
            get_workspace_from_cli_opts,
        )
        from dagster.version import __version__
        from dagster_shared.cli import WorkspaceOpts

        self.instance = stack.enter_context(DagsterInstance.get())
        self.workspace = stack.enter_context(
            get_workspace_from_cli_opts(
                self.instance,
                __version__,
                WorkspaceOpts(workspace=[str(REPO / "workspace.yaml")]),
                allow_in_process=True,
            )
        )
        self.location = get_code_location_from_workspace(self.workspace, None)
        self.repo = get_remote_repository_from_code_location(self.location, None)
        self.job = self.repo.get_full_job(f"sync_{CRM}")

    def submit(self, integration_id: int, org_id: int) -> tuple[str, float]:
        return self.submit_request(run_config(integration_id, False), run_tags(integration_id, org_id, CRM, "schedule"))

    def submit_request(self, config: dict[str, Any], tags: dict[str, str]) -> tuple[str, float]:
        from dagster._cli.job import _create_run

        run = _create_run(
            instance=self.instance,
            code_location=self.location,
            remote_repo=self.repo,
            remote_job=self.job,
            run_config=config,
            tags=tags,
            op_selection=None,
            run_id=None,
        )
        submitted = time.time()
        self.instance.submit_run(run.run_id, self.workspace)
        return run.run_id, submitted

    def wait(self, run_ids: list[str], timeout: float = 300) -> dict[str, float]:
        """Poll the run storage until each run is finished; the wall-clock time each was first seen SUCCESS."""
        from dagster import DagsterRunStatus

        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(run_ids):
            for run_id in run_ids:
                if run_id in seen:
                    continue
                run = self.instance.get_run_by_id(run_id)
                if run and run.status == DagsterRunStatus.SUCCESS:
                    seen[run_id] = time.time()
                elif run and run.is_finished:
                    raise RuntimeError(f"run {run_id} ended {run.status}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished in {timeout} s: {set(run_ids) - set(seen)}")
            time.sleep(0.02)
        return seen

    def phases(self, run_id: str, submitted: float) -> dict[str, float]:
        """Seconds from submit to each of the run's lifecycle events."""
        stamps: dict[str, float] = {}
        for entry in self.instance.all_logs(run_id):
            kind = entry.dagster_event.event_type.name if entry.dagster_event else None  # value: PIPELINE_*
            if kind in EVENTS and kind not in stamps:
                stamps[kind] = entry.timestamp
        return {kind: round(stamps[kind] - submitted, 3) for kind in EVENTS if kind in stamps}


class World:
    """The bench's set-up: databases, the sandbox, `count` synced integrations, the instance; env applied."""

    def __init__(self, stack: ExitStack, args: argparse.Namespace, count: int, cron: str) -> None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dagster-bench-")))
        self.app_url = stack.enter_context(pg_database())
        dagster_url = None
        if args.storage != "sqlite":
            dagster_url = stack.enter_context(pg_database("nh_bench_dagster"))
        self.sandbox = stack.enter_context(sandbox_process())
        self.control = stack.enter_context(SandboxControl(self.sandbox.root_url))
        self.control.dataset(CRM, contacts=args.contacts, leads=args.leads)
        self.env = {
            **app_env(self.app_url, work / "home"),
            **self.sandbox.crm_env(),
            "DAGSTER_HOME": str(work / "dagster"),
            "NURTUREHUB_SCHEDULE_CRON": cron,
        }
        log(f"seeding {count} synced integrations")
        self.org, self.ids = seed(self.app_url, self.env, count)
        os.environ.update(self.env)  # before instance_config(): NURTUREHUB_MAX_CONCURRENT_SYNCS may be set
        self.dagster_url = dagster_url
        write_instance(work / "dagster", args.storage, dagster_url, args.launcher)

        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:  # creates the storage once, before several processes use it
            instance.get_runs(limit=1)


# --- the fleet: one schedule tick of N integrations --------------------------------------------


def cpu_seconds_of(pids: list[int]) -> float:
    """utime+stime (and reaped children's) of the given processes, those still alive."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (its backends do the sync's database work)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def postgres_cpu_seconds() -> float:
    """utime+stime of every PostgreSQL process now alive, plus what the postmaster has reaped (ended backends):
    the server's CPU so far, other users' included (run it on a quiet server)."""
    return cpu_seconds_of(postgres_pids())


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat: how busy the cores were."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def tick_cron(lead_seconds: float) -> tuple[str, datetime]:
    """A cron that fires once, at the first whole minute at least `lead_seconds` from now (Europe/London, the
    schedules' timezone): the daemon has started and seen the schedule by then."""
    at = (datetime.now(UTC) + timedelta(seconds=lead_seconds + 60)).replace(second=0, microsecond=0)
    local = at.astimezone(ZoneInfo("Europe/London"))
    return f"{local.minute} {local.hour} {local.day} {local.month} *", at


def concurrency(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """The most runs in progress at once, and the mean over the span of all of them."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    return peak, sum(end - start for start, end in intervals) / span if span > 0 else float(len(intervals))


def schedule_tick(app_url: str, at: datetime) -> list[Any]:
    """The RunRequests `sync_reapit_schedule` makes at `at`: its own function, in this process (--submit)."""
    from dagster import build_schedule_context

    from nurturehub_pipelines.schedules import scheduled_run_requests

    requests = scheduled_run_requests(CRM, build_schedule_context(scheduled_execution_time=at), db.engine(app_url))
    assert isinstance(requests, list), requests
    return requests


def fleet(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """N no-change scheduled syncs of one CRM from one real schedule tick: bound by the cores, not the queue."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    runs = args.fleet
    cron, tick_at = (NEVER, datetime.now(UTC)) if args.submit else tick_cron(args.tick_lead)
    with ExitStack() as stack:
        world = World(stack, args, runs, cron)
        world.control.rate_limit(CRM, None)  # one limit for every customer in the sandbox; Reapit's is per customer
        limit = max_concurrent_syncs()
        log(f"starting dagster-daemon; the tick is at {tick_at:%H:%M:%S} UTC ({cron!r}), {limit} runs at once")
        process = stack.enter_context(daemon(world.env, results_dir() / f"{args.out}_daemon.log"))
        sandbox_pid = world.sandbox.process.pid
        instance = stack.enter_context(DagsterInstance.get())
        scheduled = RunsFilter(tags={"nurturehub/trigger": "schedule"})

        if args.submit:  # no tick to wait for: let the daemon start and load the code location
            submitter = Submitter(stack)
            tick_at = datetime.now(UTC) + timedelta(seconds=args.tick_lead)
        idle_seconds = min(args.idle_seconds, max(1.0, args.tick_lead - 15))  # after the daemon's start-up
        while time.time() < tick_at.timestamp() - idle_seconds - 0.5:
            time.sleep(0.2)
        # What the daemon costs with nothing to run, just before the tick: its sensors and queue ticking.
        idle_cpu, idle_from = tree_cpu_seconds(process.pid), time.monotonic()
        time.sleep(idle_seconds)
        idle_share = (tree_cpu_seconds(process.pid) - idle_cpu) / (time.monotonic() - idle_from)
        before = {
            "daemon": tree_cpu_seconds(process.pid),
            "sandbox": cpu_seconds_of([sandbox_pid]),
            "postgres": cpu_seconds_of(pg := postgres_pids()),
            "machine": machine_busy_seconds(),
        }
        if args.submit:
            tick_at = datetime.now(UTC)
            for request in schedule_tick(world.app_url, tick_at):
                submitter.submit_request(request.run_config, request.tags)
        log(f"waiting for the tick's {runs} runs")
        deadline = time.monotonic() + args.fleet_timeout
        while True:
            done = instance.get_runs_count(RunsFilter(tags=scheduled.tags, statuses=[DagsterRunStatus.SUCCESS]))
            failed = instance.get_runs_count(
                RunsFilter(tags=scheduled.tags, statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED])
            )
            if failed:
                raise RuntimeError(f"{failed} scheduled runs failed: see {args.out}_daemon.log")
            if done >= runs:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done}/{runs} scheduled runs succeeded in {args.fleet_timeout} s")
            time.sleep(0.5)
        after = {
            "daemon": tree_cpu_seconds(process.pid),
            "sandbox": cpu_seconds_of([sandbox_pid]),
            "postgres": cpu_seconds_of(pg),  # the same processes: backends started later are not counted
            "machine": machine_busy_seconds(),
        }
        records = instance.get_run_records(filters=scheduled)
        assert len(records) == runs, f"the tick made {len(records)} runs, not {runs}"
        assert written(world.app_url, [r.dagster_run.run_id for r in records]) == 0
        intervals = [(r.start_time or r.create_timestamp.timestamp(), r.end_time or 0.0) for r in records]
        created = min(r.create_timestamp.timestamp() for r in records)
        last = max(end for _, end in intervals)

    cores = os.cpu_count() or 1
    wall = last - tick_at.timestamp()
    cpu = {name: round(after[name] - before[name], 1) for name in ("daemon", "sandbox", "postgres")}
    busy = (after["machine"][0] - before["machine"][0]) / max(1e-9, after["machine"][1] - before["machine"][1])
    per_run = {name: round(value / runs, 3) for name, value in cpu.items()}
    peak, mean = concurrency(intervals)
    result.update(
        {
            "fleet": {
                "runs": runs,
                "crm": CRM,
                "sync_limit": limit,
                "cores": cores,
                "tick_at": tick_at.isoformat(),
                "trigger": "schedule evaluated and submitted by the bench" if args.submit else "the daemon's tick",
                "tick_to_first_run_created_s": round(created - tick_at.timestamp(), 2),
                "tick_to_last_success_s": round(wall, 1),
                "first_run_created_to_last_success_s": round(last - created, 1),
                "runs_per_minute": round(runs / wall * 60, 1),
                "cpu_s": cpu,
                "cpu_s_per_run": per_run,
                # Measured over the last seconds before the tick (its sensors and queue ticking); it is in
                # the per-run figures above, as it is in production.
                "daemon_idle_cpu_share_of_a_core": round(idle_share, 3),
                "machine_busy_share": round(busy, 3),  # all cores, every process (other users' too)
                "runs_at_once": {"peak": peak, "mean": round(mean, 2)},
                # The time the cores alone need for the daemon's tree (daemon, code server, run workers):
                # runs x its CPU seconds per run / cores. PostgreSQL's share is not in it: the server is
                # shared, and its figure counts every user's backends.
                "cpu_bound_s": round(runs * per_run["daemon"] / cores, 1),
                "cpu_bound_with_postgres_and_sandbox_s": round(runs * sum(per_run.values()) / cores, 1),
                "wall_over_cpu_bound": round(wall / (runs * per_run["daemon"] / cores), 2),
            }
        }
    )
    write_result(args.out, result)
    return result


# --- what a run worker imports -------------------------------------------------------------------

IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def importtime_summary(raw: str, top: int = 12) -> dict[str, Any]:
    """Self time per top-level package, and the modules' total, from `-X importtime` output (microseconds)."""
    per_package: dict[str, int] = {}
    total = modules = 0
    for line in raw.splitlines():
        match = IMPORTTIME.match(line)
        if match:
            modules += 1
            total += int(match[1])
            package = match[4].split(".")[0]
            per_package[package] = per_package.get(package, 0) + int(match[1])
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
    return {"total_s": round(total / 1e6, 3), "modules": modules, "top_s": {k: round(v / 1e6, 3) for k, v in ranked}}


def imports(args: argparse.Namespace) -> dict[str, Any]:
    probes = {
        "definitions": "import nurturehub_pipelines.definitions",
        "run_worker": "import dagster._grpc.impl; import nurturehub_pipelines.definitions",
    }
    result: dict[str, Any] = {"machine": machine(), "repeat": args.repeat}
    for name, code in probes.items():
        totals, cpus, raw = [], [], ""
        for _ in range(args.repeat):
            timed = f"import resource, sys; {code}; u = resource.getrusage(resource.RUSAGE_SELF); " + (
                "print(u.ru_utime + u.ru_stime, file=sys.stdout)"
            )
            done = subprocess.run(
                [PYTHON, "-X", "importtime", "-c", timed], cwd=REPO, capture_output=True, text=True, check=True
            )
            raw = done.stderr
            totals.append(importtime_summary(raw)["total_s"])
            cpus.append(float(done.stdout.split()[-1]))
        (results_dir() / f"{args.out}_{name}.importtime.txt").write_text(raw)
        summary = importtime_summary(raw)
        result[name] = {
            "code": code,
            "median_import_s": round(statistics.median(totals), 3),
            "median_process_cpu_s": round(statistics.median(cpus), 3),  # interpreter start-up included
            "modules": summary["modules"],
            "top_s_last_run": summary["top_s"],
            "not_imported": [m for m in NOT_NEEDED if not re.search(rf"\| +{re.escape(m)}$", raw, re.M)],
        }
        figures = result[name]
        log(f"{name}: median {figures['median_import_s']} s importing, {figures['median_process_cpu_s']} CPU s")
    write_result(args.out, result)
    return result


# What a sync does not need; listed in the result as absent or not (tests/.../test_code_location_imports.py).
NOT_NEEDED = ("starlette", "jinja2", "uvicorn", "alembic", "crm_sandbox", "pandas", "numpy")


# --- the run ----------------------------------------------------------------------------------


def written(database_url: str, run_ids: list[str]) -> int:
    with db.engine(database_url).connect() as conn:
        return int(
            conn.execute(
                text("SELECT coalesce(sum(records_affected), 0) FROM crm_sync_log WHERE event_type = 'sync_finished' "
                     "AND run_id = ANY(:ids)"),
                {"ids": run_ids},
            ).scalar_one()
        )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs timed one at a time")
    parser.add_argument("--batch", type=int, default=10, help="runs submitted at once for throughput")
    parser.add_argument(
        "--storage",
        choices=("postgres", "dagster-postgres", "sqlite"),
        default="postgres",
        help="postgres: the repo's dagster.yaml (pooled); dagster-postgres: plain dagster-postgres, to compare",
    )
    parser.add_argument(
        "--launcher",
        choices=("forkserver", "dagster"),
        default="forkserver",
        help="forkserver: the repo's dagster.yaml (run workers forked warm); dagster: DefaultRunLauncher, to compare",
    )
    parser.add_argument("--idle-seconds", type=float, default=20, help="daemon CPU measured with nothing to run")
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="run the daemon (and so its code server and run workers) under py-spy and summarise where a run "
        "worker's time goes; the timings of such a run are not figures",
    )
    parser.add_argument("--fleet", type=int, default=0, help="N integrations synced from one real schedule tick")
    parser.add_argument("--tick-lead", type=float, default=30, help="--fleet: seconds from daemon start to tick")
    parser.add_argument("--fleet-timeout", type=float, default=3600, help="--fleet: give up after this long")
    parser.add_argument(
        "--submit",
        action="store_true",
        help="--fleet: evaluate the schedule here and submit its runs as the daemon's scheduler does, instead of "
        "waiting for its real tick (up to a minute): for the smoke run",
    )
    parser.add_argument("--imports", action="store_true", help="what the code location and a run worker import")
    parser.add_argument("--repeat", type=int, default=5, help="--imports: fresh processes per probe")
    parser.add_argument("--out", default=None, help="result name (default: dagster_overhead/_fleet/_imports)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = "dagster_fleet" if args.fleet else "dagster_imports" if args.imports else "dagster_overhead"
    if args.py_spy:
        args.batch = 0  # py-spy's own CPU would count in the throughput figures
    result: dict[str, Any] = {
        "machine": machine(),
        "storage": args.storage,
        "launcher": args.launcher,
        "target_seconds": TARGET_SECONDS,
    }

    if args.imports:
        return imports(args)
    if args.fleet:
        return fleet(args, result)

    with ExitStack() as stack:
        world = World(stack, args, 1 + args.batch, NEVER)
        app_url, env, org, ids = world.app_url, world.env, world.org, world.ids
        log("starting dagster-daemon")
        raw = results_dir() / f"{args.out}_py_spy.txt" if args.py_spy else None
        process = stack.enter_context(daemon(env, results_dir() / f"{args.out}_daemon.log", raw))
        submitter = Submitter(stack)

        log("warm-up run (the daemon's first queue tick and code server start)")
        run_id, submitted = submitter.submit(ids[0], org)
        submitter.wait([run_id], timeout=600)

        # What the daemon costs with nothing to run: its sensors and queue ticking (CPU share of one core).
        idle_share = pg_idle_share = 0.0
        if not args.py_spy:  # under py-spy the tree's root is py-spy itself
            idle_before, idle_started = tree_cpu_seconds(process.pid), time.monotonic()
            pg_idle_before = postgres_cpu_seconds()
            time.sleep(args.idle_seconds)
            idle_seconds = time.monotonic() - idle_started
            idle_share = (tree_cpu_seconds(process.pid) - idle_before) / idle_seconds
            pg_idle_share = (postgres_cpu_seconds() - pg_idle_before) / idle_seconds
            result["daemon_idle_cpu_share_of_a_core"] = round(idle_share, 3)
            result["postgres_idle_cpu_share_of_a_core"] = round(pg_idle_share, 3)

        latencies, phases, run_ids = [], [], []
        for n in range(args.runs):
            run_id, submitted = submitter.submit(ids[0], org)
            done = submitter.wait([run_id])[run_id]
            latencies.append(done - submitted)
            phases.append(submitter.phases(run_id, submitted))
            run_ids.append(run_id)
            log(f"run {n + 1}/{args.runs}: {latencies[-1]:.2f} s {phases[-1]}")
        assert written(app_url, run_ids) == 0, "a run with nothing changed wrote records"

        if args.batch == 0:
            stack.close()  # stops the daemon (py-spy writes its samples), drops the databases
            profile = summarise_py_spy(raw, 1 + args.runs) if raw else None
            result.update({"latency_samples_s": [round(s, 3) for s in latencies], "py_spy": profile})
            write_result(args.out, result)
            return result

        log(f"throughput: {args.batch} runs at once")
        cpu_before, pg_before, started = tree_cpu_seconds(process.pid), postgres_cpu_seconds(), time.time()
        roles_before, db_before = tree_cpu_by_role(process.pid), pg_database_stats(world.dagster_url)
        batch = [submitter.submit(iid, org) for iid in ids[1 : 1 + args.batch]]
        done_at = submitter.wait([run_id for run_id, _ in batch], timeout=1200)
        batch_seconds = max(done_at.values()) - started
        cpu_seconds = tree_cpu_seconds(process.pid) - cpu_before
        pg_seconds = postgres_cpu_seconds() - pg_before
        roles_after, db_after = tree_cpu_by_role(process.pid), pg_database_stats(world.dagster_url)
        timeline = sorted(
            (submitter.phases(run_id, started) for run_id, _ in batch), key=lambda p: p.get("RUN_STARTING", 0)
        )
        assert written(app_url, [run_id for run_id, _ in batch]) == 0

    median = statistics.median(latencies)
    ceiling = max_concurrent_syncs()  # the queue's sync runs at once on this machine (no per-CRM ceiling)
    # A run's own CPU: the tree's CPU during the batch less what the daemon burns anyway in that time.
    per_run_cpu = max(0.01, (cpu_seconds - idle_share * batch_seconds) / args.batch)
    per_run_pg = max(0.0, (pg_seconds - pg_idle_share * batch_seconds) / args.batch)
    cores = os.cpu_count() or 1
    by_latency = ceiling * CYCLE_SECONDS / median
    by_cpu = (cores - idle_share) * CYCLE_SECONDS / per_run_cpu
    by_throughput = args.batch / batch_seconds * CYCLE_SECONDS
    result.update(
        {
            "latency": {
                "n": len(latencies),
                "median_s": round(median, 2),
                "min_s": round(min(latencies), 2),
                "max_s": round(max(latencies), 2),
                "median_phases_s": {
                    kind: round(statistics.median(p[kind] for p in phases if kind in p), 3)
                    for kind in EVENTS
                    if any(kind in p for p in phases)
                },
                "samples_s": [round(s, 3) for s in latencies],
            },
            "throughput": {
                "runs": args.batch,
                "seconds": round(batch_seconds, 2),
                "runs_per_minute": round(args.batch / batch_seconds * 60, 1),
                "cpu_seconds_per_run": round(per_run_cpu, 2),  # the daemon's idle ticking taken out
                # Every PostgreSQL process (the server is shared: quiet machine only), its idle share taken out.
                "postgres_cpu_seconds_per_run": round(per_run_pg, 2),
                "cpu_seconds_per_run_with_postgres": round(per_run_cpu + per_run_pg, 2),
                # Per run, the daemon's idle ticking (and any code server started meanwhile) not taken out.
                "cpu_seconds_per_run_by_process": {
                    role: round((roles_after[role] - roles_before[role]) / args.batch, 2) for role in roles_after
                },
                "dagster_database_per_run": {
                    name: round((db_after[name] - db_before[name]) / args.batch, 1) for name in db_after
                },
                "sync_concurrency": ceiling,
                "timeline_s": timeline,  # per run, seconds after the first submit
            },
            "capacity_per_4h": {
                "by_latency": int(by_latency),
                "by_cpu": int(by_cpu),
                "bound": int(min(by_latency, by_cpu)),
                "measured_throughput": int(by_throughput),
                "formula": (
                    f"min({ceiling} x 14400 / {median:.2f}, ({cores} - {idle_share:.2f}) x 14400 / {per_run_cpu:.2f})"
                ),
            },
        }
    )
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
