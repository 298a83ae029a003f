"""Full and incremental sync against a CRM server that is not the bottleneck, beside its limit and dlt.

    python -m bench.sync_bench [--crm openapi|reapit] [--contacts 100000] [--leads 50000] [--repeat 3]
                               [--no-dlt] [--sqlite] [--no-incremental] [--profile]

The CRM is bench/fast_crm.py in its own process: every page pre-rendered to bytes before timing starts,
served from memory; its `proof` (a bare httpx client, and a raw socket) is measured first, in this run.
Then, `--repeat` times, each time on a fresh PostgreSQL database:
1. the limit: every page of both streams at the page size our engine asks for, fetched with a bare
   keep-alive httpx.Client and decoded (`response.json()`), nothing else; then the same records, mapped by
   the real mappers beforehand (untimed), loaded by COPY into tables `LIKE contacts/leads INCLUDING ALL`;
   `limit = records / (fetch seconds + COPY seconds)`;
2. three alternating rounds, ours then dlt's: r1 (first load), r2 (every record changed: a merge over
   changed rows), r3 (changed again). Ours is the real user command, `nurturehub sync ID --full`, run as a
   whole process (the integration's `base_url` setting, or `REAPIT_BASE_URL`, points at the round's data);
   dlt is its `rest_api` source with its best settings (bench/dlt_child.py) from its own venv. Each side
   must write every record every round (ours: its steps' `records_affected`; dlt: the rows carrying the
   round's load id);
3. (first repeat) the incremental sync, `nurturehub sync ID`, after 0.1 % of each stream changed (`/t3`):
   its time and its requests per stream (the server's `/_requests`);
4. `--sqlite`: our first load into a SQLite app database beside its limit (the same bare fetch plus one
   `executemany` of the same mapped rows into an empty app database's own tables).

Peak RSS is `ru_maxrss` of the measured command as `/usr/bin/time` reports it: /usr/bin/time (2 MB) forks
and execs it, so the maximum is the command's own (wait4 from this process would fold this process's
high-water mark into the child's at exec). The sync's own time is its Dagster run's start → end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg2  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from bench import fast_crm
from bench.common import PYTHON, REPO, cpu_probe_ms, log, machine, pg_database, results_dir, write_result
from crm_resources import openapi, reapit
from crm_resources.core import CrmSpec, Endpoint

NURTUREHUB = str(Path(PYTHON).with_name("nurturehub"))
TIME = "/usr/bin/time"
DLT_VENV = Path("/work/venv-dlt")
DLT_PAGE_SIZE = {"openapi": 500, "reapit": 100}  # dlt's best: the largest page each API allows
SECRET_KEY = "bench-secret-key"
ROUNDS = ("r1", "r2", "r3")
ROUND_NAMES = {"r1": "first load", "r2": "merge over changed rows", "r3": "merge again"}
COMMON_COLUMNS = ["source_updated_at", "deleted", "raw", "content_hash", "synced_at"]
CONTACT_COLUMNS = [
    *["integration_id", "external_id", "first_name", "last_name", "email", "phone", "marketing_consent"],
    *COMMON_COLUMNS,
]
LEAD_COLUMNS = ["integration_id", "external_id", "contact_external_id", "kind", "status", *COMMON_COLUMNS]


@dataclass(frozen=True)
class Crm:
    """What the bench needs to know of one CRM: its spec (the engine's page size), wire paths, mappers."""

    name: str
    spec: CrmSpec
    records_key: str
    paths: Mapping[str, str]
    mappers: Mapping[str, Callable[..., Any]]

    @property
    def page_size(self) -> int:
        """The page size the engine asks for, read from its spec: the limit is taken at the same size."""
        return int(self.spec.paginator.page_size)


CRMS = {
    "openapi": Crm(
        "openapi",
        openapi.OPENAPI,
        "data",
        {"contacts": "/contacts", "leads": "/leads"},
        {"contacts": openapi.map_contact, "leads": openapi.map_lead},
    ),
    "reapit": Crm(
        "reapit",
        reapit.REAPIT,
        "_embedded",
        {"contacts": "/contacts/", "leads": "/applicants/"},
        {"contacts": reapit.map_contact, "leads": reapit.map_lead},
    ),
}


def rate(records: int, seconds: float) -> float:
    return round(records / seconds, 1) if seconds else 0.0


# --- the limit --------------------------------------------------------------------------------


def measure_fetch(server: fast_crm.FastCrm, crm: Crm) -> tuple[dict[str, float], dict[str, list[bytes]]]:
    """Seconds to fetch and decode every page of each stream (r1) at the engine's page size; pages kept.

    The strictest fetch this client can do: the best of `fast_crm.PASSES` passes, decoded with orjson as the
    engine decodes (faster than httpx's `response.json()`), so the limit is never one our engine beats by
    parsing faster than it."""
    seconds: dict[str, float] = {}
    kept: dict[str, list[bytes]] = {}
    for stream in ("contacts", "leads"):
        kept[stream] = []
        fast_crm.bare_fetch(server, "r1", stream, crm.page_size, kept[stream], parse="orjson")
        seconds[stream] = min(
            fast_crm.bare_fetch(server, "r1", stream, crm.page_size, parse="orjson")[2]
            for _ in range(fast_crm.PASSES)
        )
    return seconds, kept


def mapped_rows(crm: Crm, stream: str, integration_id: int, pages: list[bytes]) -> list[dict[str, Any]]:
    """The rows the engine would store, mapped by the real mappers (untimed: engine work, not the limit)."""
    mapper = crm.mappers[stream]
    endpoint = Endpoint(crm.paths[stream])
    columns = CONTACT_COLUMNS if stream == "contacts" else LEAD_COLUMNS
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    rows = []
    for page in pages:
        for raw in json.loads(page)[crm.records_key]:
            record = mapper(raw, endpoint)
            text = json.dumps(record.raw, separators=(",", ":"))
            values = {name: getattr(record, name, None) for name in columns}
            values.update(
                integration_id=integration_id,
                raw=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                synced_at=now,
                source_updated_at=record.source_updated_at.isoformat() if record.source_updated_at else None,
                deleted=bool(record.deleted),
            )
            rows.append(values)
    return rows


def _copy_text(value: Any) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def measure_copy(database_url: str, rows: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """COPY alone into tables of the same shape (LIKE ... INCLUDING ALL: the same indexes and defaults)."""
    buffers = {}
    for stream, stream_rows in rows.items():
        columns = CONTACT_COLUMNS if stream == "contacts" else LEAD_COLUMNS
        buffer = io.StringIO()
        for values in stream_rows:
            buffer.write("\t".join(_copy_text(values[name]) for name in columns) + "\n")
        buffer.seek(0)
        buffers[stream] = buffer
    url = make_url(database_url)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    seconds: dict[str, float] = {}
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS bench_copy")
            for stream in buffers:
                cur.execute(f"DROP TABLE IF EXISTS bench_copy.{stream}")
                cur.execute(f"CREATE TABLE bench_copy.{stream} (LIKE public.{stream} INCLUDING ALL)")
        conn.commit()
        for stream, buffer in buffers.items():
            columns = CONTACT_COLUMNS if stream == "contacts" else LEAD_COLUMNS
            started = time.perf_counter()
            with conn.cursor() as cur:
                cur.copy_expert(f"COPY bench_copy.{stream} ({', '.join(columns)}) FROM STDIN", buffer)
            conn.commit()
            seconds[stream] = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA bench_copy CASCADE")
        conn.commit()
    finally:
        conn.close()
    return seconds


def measure_executemany(sqlite_path: Path, rows: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """SQLite's limit: one `executemany` per table, one transaction, into an empty app database's tables."""
    conn = sqlite3.connect(sqlite_path)
    seconds: dict[str, float] = {}
    try:
        for stream, stream_rows in rows.items():
            columns = CONTACT_COLUMNS if stream == "contacts" else LEAD_COLUMNS
            values = [tuple(row[name] for name in columns) for row in stream_rows]  # untimed, as the COPY text
            statement = f"INSERT INTO {stream} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            started = time.perf_counter()
            with conn:
                conn.executemany(statement, values)
            seconds[stream] = time.perf_counter() - started
    finally:
        conn.close()
    return seconds


# --- the app database and our sync ------------------------------------------------------------


@dataclass
class App:
    """One app database with one integration pointed at the fast server, and the env of a deployment."""

    crm: Crm
    server: fast_crm.FastCrm
    database_url: str
    home: Path
    integration_id: int = 0
    org_id: int = 0

    def env(self, version: str) -> dict[str, str]:
        return {
            "NURTUREHUB_DATABASE_URL": self.database_url,
            "NURTUREHUB_HOME": str(self.home),
            "NURTUREHUB_SECRET_KEY": SECRET_KEY,
            "DAGSTER_HOME": str(self.home / "dagster"),
            **self.server.env(version),
        }

    def setup(self) -> None:
        """Schema, organisation and integration (untimed), in this process with the child's secret key."""
        with _environ(self.env("r1")):
            from nurturehub_pipelines.store import accounts, db

            db.upgrade(self.database_url)
            with db.engine(self.database_url).begin() as conn:
                org = accounts.create_org(conn, "Bench Lettings", "owner@bench.example")
                self.org_id = org["org_id"]
                if self.crm.name == "openapi":
                    settings = {"base_url": self.server.base_url("r1")}
                    credentials = {"token": fast_crm.OPENAPI_TOKEN}
                else:
                    settings, credentials = {"customer_id": fast_crm.REAPIT_CUSTOMER}, {}
                self.integration_id = accounts.add_integration(
                    conn, self.org_id, self.crm.name, "Bench", settings, credentials
                )
            # The embedded Dagster instance is made once per installation (its SQLite schemas): made here,
            # untimed, so round 1 times a first load of the data, not the first use of the tool.
            from dagster import DagsterInstance

            from nurturehub_pipelines.instance import ensure_embedded_instance

            ensure_embedded_instance()
            DagsterInstance.get().dispose()

    def point_at(self, version: str) -> None:
        """The round's data: the Open API integration's `base_url` setting (Reapit's is in the env)."""
        if self.crm.name != "openapi":
            return
        with _environ(self.env(version)):
            from nurturehub_pipelines.store import db
            from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change

            with db.engine(self.database_url).begin() as conn:
                change = IntegrationChange(settings={"base_url": self.server.base_url(version)})
                apply_change(conn, self.integration_id, change, "bench")

    def sync(self, version: str, *, full: bool, label: str) -> dict[str, Any]:
        """`nurturehub sync ID [--full]` as a whole process: wall time, the run's own time, peak RSS, counts."""
        argv = [NURTUREHUB, "sync", str(self.integration_id), *(["--full"] if full else [])]
        timed = timed_process(argv, self.env(version), label)
        summary = json.loads(timed["stdout"].strip().splitlines()[-1])
        steps = {step["event_type"]: step for step in summary["steps"]}
        return {
            "outcome": summary["outcome"],
            "run_id": summary["run_id"],
            "process_wall_seconds": timed["wall_seconds"],
            "sync_seconds": run_seconds(self.home / "dagster", summary["run_id"]),
            "rss_mb": timed["rss_mb"],
            "written": {
                "contacts": steps.get("contact_import", {}).get("records_affected"),
                "leads": steps.get("lead_update", {}).get("records_affected"),
            },
            "skipped": sum(int(s.get("records_skipped") or 0) for s in summary["steps"]),
        }


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """The bench process borrows a child's settings for the setup it does in process (the secret key)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def timed_process(argv: list[str], env: Mapping[str, str], label: str, cwd: Path = REPO) -> dict[str, Any]:
    """Run a command under /usr/bin/time: wall seconds (from here), its ru_maxrss, its stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rss_file:
        log_path = results_dir() / f"sync_{label}.log"
        started = time.monotonic()
        with open(log_path, "ab") as err:
            done = subprocess.run(
                [TIME, "-o", rss_file.name, "-f", "%M", *argv],
                cwd=cwd,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=err,
                timeout=3600,
            )
        wall = time.monotonic() - started
        lines = Path(rss_file.name).read_text().split()
    stdout = done.stdout.decode()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode} (log: {log_path}): {stdout[-2000:]}")
    return {"wall_seconds": round(wall, 3), "rss_mb": round(int(lines[-1]) / 1024, 1), "stdout": stdout}


def run_seconds(dagster_home: Path, run_id: str) -> float:
    """The run's own time, RUN_START → RUN_SUCCESS, from the instance the command ran on."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        stats = instance.get_run_stats(run_id)
    if stats.start_time is None or stats.end_time is None:
        raise RuntimeError(f"run {run_id} has no start or end time")
    return round(stats.end_time - stats.start_time, 3)


def check_written(side: str, label: str, written: Mapping[str, Any], expected: Mapping[str, int]) -> None:
    if dict(written) != dict(expected):
        raise RuntimeError(f"{side} {label} wrote {dict(written)}, expected {dict(expected)}")


# --- dlt --------------------------------------------------------------------------------------


def ensure_dlt_venv() -> Path:
    """dlt in a venv of its own (its pins need not agree with Dagster's); created on first use."""
    python = DLT_VENV / "bin" / "python"
    usable = python.exists() and subprocess.run([str(python), "-c", "import dlt, psycopg2"]).returncode == 0
    if not usable:
        log(f"creating {DLT_VENV} with dlt[postgres] (once)")
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run([str(DLT_VENV / "bin" / "pip"), "install", "--quiet", "dlt[postgres]"], check=True)
    return python


def dlt_version(python: Path) -> str:
    done = subprocess.run([str(python), "-c", "import dlt; print(dlt.__version__)"], capture_output=True, text=True)
    return done.stdout.strip()


def run_dlt(python: Path, app: App, version: str, work: Path, label: str) -> dict[str, Any]:
    """One dlt round as a whole process, into its own dataset of the same database, merging on `id`."""
    url = make_url(app.database_url)
    # dlt insists on a password; the local server's trust auth ignores it.
    plain = f"postgresql://{url.username}:{url.password or 'trust'}@{url.host}:{url.port}/{url.database}"
    argv = [str(python), str(REPO / "bench" / "dlt_child.py"), "--crm", app.crm.name,
            "--base-url", app.server.base_url(version), "--pg-url", plain, "--pipelines-dir", str(work),
            "--dataset", f"dlt_{app.crm.name}"]  # fmt: skip
    if app.crm.name == "openapi":
        argv += ["--token", fast_crm.OPENAPI_TOKEN]
    else:
        argv += ["--token-url", app.server.token_url, "--client-id", fast_crm.REAPIT_CLIENT[0]]
        argv += ["--client-secret", fast_crm.REAPIT_CLIENT[1], "--customer", fast_crm.REAPIT_CUSTOMER]
    env = {"DLT_DATA_DIR": str(work), "RUNTIME__LOG_LEVEL": "WARNING"}
    timed = timed_process(argv, env, label, cwd=work)
    answer = json.loads(timed["stdout"].strip().splitlines()[-1])
    tables = ("contacts", "leads") if app.crm.name == "openapi" else ("contacts", "applicants")
    return {
        "process_wall_seconds": timed["wall_seconds"],
        "run_seconds": answer["run_seconds"],
        "rss_mb": timed["rss_mb"],
        "vmhwm_mb": answer["vmhwm_mb"],
        "written": {"contacts": answer["written"][tables[0]], "leads": answer["written"][tables[1]]},
        "rows": {"contacts": answer["rows"][tables[0]], "leads": answer["rows"][tables[1]]},
    }


# --- one repeat -------------------------------------------------------------------------------


def one_repeat(
    crm: Crm, server: fast_crm.FastCrm, args: argparse.Namespace, index: int, dlt: Path | None, work: Path
) -> dict[str, Any]:
    expected = {"contacts": args.contacts, "leads": args.leads}
    records = args.contacts + args.leads
    out: dict[str, Any] = {}
    with pg_database() as database_url:
        app = App(crm, server, database_url, work / f"home{index}")
        app.setup()

        log(f"[{index}] limit: bare fetch of {records:,} records at page size {crm.page_size}, then COPY alone")
        fetch, pages = measure_fetch(server, crm)
        rows = {stream: mapped_rows(crm, stream, app.integration_id, pages[stream]) for stream in pages}
        del pages
        assert {stream: len(r) for stream, r in rows.items()} == expected
        copy = measure_copy(database_url, rows)
        floor = sum(fetch.values()) + sum(copy.values())
        out["limit"] = {
            "page_size": crm.page_size,
            "fetch_parse_seconds": {k: round(v, 3) for k, v in fetch.items()},
            "copy_seconds": {k: round(v, 3) for k, v in copy.items()},
            "seconds": round(floor, 3),
            "records_per_s": rate(records, floor),
        }

        dlt_work = work / f"dlt{index}"
        dlt_work.mkdir()
        for version in ROUNDS:
            app.point_at(version)
            log(f"[{index}] {version} ({ROUND_NAMES[version]}): nurturehub sync {app.integration_id} --full")
            ours = app.sync(version, full=True, label=f"ours_{version}")
            check_written("ours", version, ours["written"], expected)
            ours["records_per_s"] = rate(records, ours["process_wall_seconds"])
            ours["sync_records_per_s"] = rate(records, ours["sync_seconds"])
            out.setdefault("ours", {})[version] = ours
            if dlt is not None:
                log(f"[{index}] {version}: dlt rest_api, merge on id")
                theirs = run_dlt(dlt, app, version, dlt_work, f"dlt_{version}")
                check_written("dlt", version, theirs["written"], expected)
                theirs["records_per_s"] = rate(records, theirs["process_wall_seconds"])
                theirs["run_records_per_s"] = rate(records, theirs["run_seconds"])
                out.setdefault("dlt", {})[version] = theirs

        if index == 0 and not args.no_incremental:
            out["incremental"] = incremental(app, server, out["ours"]["r3"], expected)
        if args.sqlite:
            out["sqlite"] = sqlite_pass(crm, server, work / f"sqlite{index}", fetch, rows, expected)
    return out


def incremental(
    app: App, server: fast_crm.FastCrm, full: dict[str, Any], expected: Mapping[str, int]
) -> dict[str, Any]:
    """After the r3 full sync, 0.1 % of each stream changed (/t3): the scheduled kind of sync, no --full."""
    changed = {stream: len(fast_crm.touched_slots(size)) for stream, size in expected.items()}
    app.point_at("t3")
    httpx.get(f"{server.root_url}/_requests").raise_for_status()  # reset the counts
    log(f"incremental: {changed['contacts']} contacts and {changed['leads']} leads changed")
    run = app.sync("t3", full=False, label="incremental")
    check_written("ours", "incremental", run["written"], changed)
    counts = httpx.get(f"{server.root_url}/_requests").json()
    prefix = f"/{app.crm.name}/t3"
    run["changed"] = changed
    paths = {stream: prefix + app.crm.paths[stream] for stream in ("contacts", "leads")}
    probes = {stream: counts.get(fast_crm.SIZE_ONE.format(path=path), 0) for stream, path in paths.items()}
    # pages read, apart from the auth step's key check (a page of one record)
    run["requests"] = {stream: counts.get(path, 0) - probes[stream] for stream, path in paths.items()}
    run["requests"]["token"] = counts.get(f"/{app.crm.name}/token", 0)
    run["key_check_requests"] = probes
    run["share_of_full"] = round(run["sync_seconds"] / full["sync_seconds"], 4)
    return run


def sqlite_pass(
    crm: Crm,
    server: fast_crm.FastCrm,
    where: Path,
    fetch: Mapping[str, float],
    rows: dict[str, list[dict[str, Any]]],
    expected: Mapping[str, int],
) -> dict[str, Any]:
    """Our first load into a SQLite app database, and its limit: the same fetch + one executemany."""
    where.mkdir()
    from nurturehub_pipelines.store import accounts, db

    empty = where / "limit.db"
    db.upgrade(f"sqlite:///{empty}")
    with db.engine(f"sqlite:///{empty}").begin() as conn:  # the rows' integration, for the foreign key
        org = accounts.create_org(conn, "Limit", "owner@limit.example")
        integration = accounts.add_integration(conn, org["org_id"], "loop", "Limit", {}, {})
    for stream_rows in rows.values():
        for row in stream_rows:
            row["integration_id"] = integration
    executemany = measure_executemany(empty, rows)
    floor = sum(fetch.values()) + sum(executemany.values())
    records = sum(expected.values())
    app = App(crm, server, f"sqlite:///{where / 'app.db'}", where / "home")
    app.setup()
    log(f"sqlite: nurturehub sync {app.integration_id} --full")
    ours = app.sync("r1", full=True, label="ours_sqlite")
    check_written("ours (sqlite)", "r1", ours["written"], expected)
    ours["records_per_s"] = rate(records, ours["process_wall_seconds"])
    ours["sync_records_per_s"] = rate(records, ours["sync_seconds"])
    limit = {
        "fetch_parse_seconds": {k: round(v, 3) for k, v in fetch.items()},
        "executemany_seconds": {k: round(v, 3) for k, v in executemany.items()},
        "seconds": round(floor, 3),
        "records_per_s": rate(records, floor),
    }
    return {
        "limit": limit,
        "ours": ours,
        "share_of_limit": round(ours["sync_records_per_s"] / limit["records_per_s"], 3),
    }


# --- medians ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarise(repeats: list[dict[str, Any]], records: int) -> dict[str, Any]:
    """Per-round medians over the repeats: records/s, ours/dlt, ours as a share of the limit, RSS."""
    limit = median([r["limit"]["records_per_s"] for r in repeats])
    out: dict[str, Any] = {"limit_records_per_s": limit, "rounds": {}}
    for version in ROUNDS:
        ours = [r["ours"][version] for r in repeats]
        row: dict[str, Any] = {
            "ours_records_per_s": median([o["records_per_s"] for o in ours]),
            "ours_sync_records_per_s": median([o["sync_records_per_s"] for o in ours]),
            "ours_process_wall_seconds": median([o["process_wall_seconds"] for o in ours]),
            "ours_sync_seconds": median([o["sync_seconds"] for o in ours]),
            "ours_rss_mb": max(o["rss_mb"] for o in ours),
        }
        row["ours_share_of_limit"] = round(row["ours_sync_records_per_s"] / limit, 3) if limit else 0.0
        row["ours_process_share_of_limit"] = round(row["ours_records_per_s"] / limit, 3) if limit else 0.0
        if all("dlt" in r for r in repeats):
            theirs = [r["dlt"][version] for r in repeats]
            row |= {
                "dlt_records_per_s": median([t["records_per_s"] for t in theirs]),
                "dlt_run_records_per_s": median([t["run_records_per_s"] for t in theirs]),
                "dlt_process_wall_seconds": median([t["process_wall_seconds"] for t in theirs]),
                "dlt_run_seconds": median([t["run_seconds"] for t in theirs]),
                "dlt_rss_mb": max(t["rss_mb"] for t in theirs),
            }
            row["ratio"] = round(row["ours_records_per_s"] / row["dlt_records_per_s"], 3)
            row["ratio_own_time"] = round(row["ours_sync_records_per_s"] / row["dlt_run_records_per_s"], 3)
        out["rounds"][version] = row
    first_merge, again = out["rounds"]["r2"], out["rounds"]["r3"]
    out["third_vs_first_merge"] = round(again["ours_records_per_s"] / first_merge["ours_records_per_s"], 3)
    out["third_vs_first_merge_own_time"] = round(
        again["ours_sync_records_per_s"] / first_merge["ours_sync_records_per_s"], 3
    )
    if all("sqlite" in r for r in repeats):
        out["sqlite"] = {
            "limit_records_per_s": median([r["sqlite"]["limit"]["records_per_s"] for r in repeats]),
            "ours_records_per_s": median([r["sqlite"]["ours"]["records_per_s"] for r in repeats]),
            "ours_sync_records_per_s": median([r["sqlite"]["ours"]["sync_records_per_s"] for r in repeats]),
            "share_of_limit": median([r["sqlite"]["share_of_limit"] for r in repeats]),
            "ours_rss_mb": max(r["sqlite"]["ours"]["rss_mb"] for r in repeats),
        }
    return out


# --- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=sorted(CRMS), default="openapi")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh databases each time; medians reported")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt comparison (it needs its own venv)")
    parser.add_argument("--sqlite", action="store_true", help="also our first load into SQLite vs its limit")
    parser.add_argument("--no-incremental", action="store_true", help="skip the incremental sync")
    parser.add_argument(
        "--profile", action="store_true", help="one more r1 sync under pyinstrument (bench/results/), not a figure"
    )
    parser.add_argument("--out", default="sync", help="result name under bench/results/")
    args = parser.parse_args(argv)
    crm = CRMS[args.crm]
    records = args.contacts + args.leads
    result: dict[str, Any] = {
        "machine": machine(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "workload": {
            "crm": crm.name,
            "contacts": args.contacts,
            "leads": args.leads,
            "page_size_ours": crm.page_size,
            "page_size_dlt": DLT_PAGE_SIZE[crm.name],
            "repeat": args.repeat,
        },
    }
    dlt = None if args.no_dlt else ensure_dlt_venv()
    if dlt is not None:
        result["dlt_version"] = dlt_version(dlt)
    log(f"fast CRM server ({crm.name}): rendering {records:,} records x {len(fast_crm.VERSIONS)} versions")
    with (
        tempfile.TemporaryDirectory(prefix="sync-bench-") as work,
        fast_crm.fast_crm_process(crm.name, args.contacts, args.leads) as server,
    ):
        log("server proof: a bare httpx client and a raw socket fetch every page")
        result["server_proof"] = fast_crm.proof(server)
        repeats = []
        for index in range(args.repeat):
            repeats.append(one_repeat(crm, server, args, index, dlt, Path(work)))
        if args.profile:
            result["profile"] = profile_run(crm, server, Path(work))
    result["repeats"] = repeats
    result["summary"] = summarise(repeats, records)
    if "incremental" in repeats[0]:
        result["incremental"] = repeats[0]["incremental"]
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["cpu_probe_ms_end"] = cpu_probe_ms()
    write_result(args.out, result)
    return result


def profile_run(crm: Crm, server: fast_crm.FastCrm, work: Path) -> str:
    """One more r1 full sync through bench/sync_child.py under pyinstrument (its overhead is no figure)."""
    with pg_database() as database_url:
        app = App(crm, server, database_url, work / "profile")
        app.setup()
        target = results_dir() / "full_sync_profile"
        argv = [PYTHON, "-m", "bench.sync_child", "--crm", crm.name, "--integration", str(app.integration_id)]
        argv += ["--org", str(app.org_id), "--full", "--lift", "--profile", str(target)]
        log("r1 full sync under pyinstrument (not a figure)")
        timed_process(argv, app.env("r1"), "profile")
    return f"{target}.txt"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
