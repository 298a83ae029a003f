"""Retention at scale: `log prune` on 10 million `crm_sync_log` rows on PostgreSQL, with the page under load.

    python -m bench.prune_bench [--integrations 1000] [--rows-per-integration 10000] [--days 90] [--requests 300]

Workload: 1,000 integrations in organisations of 10, each with 10,000 log rows over two years (a run every
7 hours, 4 rows a run; 2 % failed, 3 % warnings, every tenth integration in a 3-run failure streak, some
Sync Now requests and refusals), generated server-side with generate_series (`read_model_bench`'s loader),
indexes rebuilt, VACUUM ANALYZE. The loaded database is cloned (CREATE DATABASE … TEMPLATE) for the bare
DELETE, so both start from the same rows.

Measured:
- the page: `GET /api/integrations` for organisations of 10 over HTTP (`nurturehub serve` in its own
  process, one keep-alive connection, bearer token), `--requests` times before pruning starts, then for as
  long as the prune runs; p50/p99/max of each;
- the prune: `store.retention.prune` with the default window in a process of its own (as `nurturehub log
  prune` runs it): wall time, rows deleted per table, batches, the largest batch's time;
- the limit: on the clone, one bare `DELETE … USING` of exactly the same rows (the same per-integration
  bounds and spared rows in a temporary table), timed alone;
- the daily case: a second prune right after the first (what the schedule does every day after);
- plans: EXPLAIN of every distinct statement the prune sends; a plan reading crm_sync_log without an
  index is flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, event, text

from bench import read_model_bench
from bench.common import PG_ADMIN_URL, PYTHON, REPO, app_env, log, machine, pg_database, summary_ms, write_result
from nurturehub_pipelines.store import db, retention
from nurturehub_pipelines.store.tables import utcnow

PRUNE_CHILD = """
import json, sys, time
from nurturehub_pipelines.store import db, retention
started = time.perf_counter()
pruned = retention.prune(db.engine(sys.argv[1]), int(sys.argv[2]), rest=float(sys.argv[3]))
print(json.dumps({"wall_seconds": round(time.perf_counter() - started, 2), "deleted": pruned.deleted,
                  "batches": pruned.batches, "largest_batch_seconds": round(pruned.largest_batch_seconds, 3),
                  "integrations": pruned.integrations, "busy_seconds": round(pruned.busy_seconds, 2),
                  "rest": pruned.rest}))
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def page_latencies(client: httpx.Client, orgs: list[int], until: Any) -> list[float]:
    """GET /api/integrations round-robin over the organisations until `until()` says stop."""
    samples, n = [], 0
    while not until(len(samples)):
        org = orgs[n % len(orgs)]
        n += 1
        started = time.perf_counter()
        answer = client.get(
            "/api/integrations", headers={"Authorization": f"Bearer {read_model_bench.World.token(org)}"}
        )
        samples.append(time.perf_counter() - started)
        answer.raise_for_status()
    return samples


def bare_delete(url: str, days: int) -> dict[str, Any]:
    """The same rows in one DELETE: the bounds `retention.plan` computes, joined in a temporary table."""
    engine = create_engine(url)
    now = utcnow()
    cutoff = retention.cutoff(days, now)
    with engine.connect() as conn:
        started = time.perf_counter()
        with conn.begin():
            plans = [p for i in retention._log_integrations(conn) if (p := retention.plan(conn, i, now))]
        planned = time.perf_counter() - started
        with conn.begin():
            conn.execute(text("CREATE TEMP TABLE bounds (iid int PRIMARY KEY, at timestamptz, id bigint, "
                              "spare_failures bool, spared bigint[])"))  # fmt: skip
            conn.execute(
                text("INSERT INTO bounds VALUES (:iid, :at, :id, :sf, :spared)"),
                [{"iid": p.integration_id, "at": p.bound[0], "id": p.bound[1], "sf": p.spare_failures,
                  "spared": list(p.spared)} for p in plans],
            )  # fmt: skip
            conn.execute(text("ANALYZE bounds"))
        started = time.perf_counter()
        with conn.begin():
            deleted = conn.execute(
                text(
                    "DELETE FROM crm_sync_log l USING bounds b WHERE l.integration_id = b.iid "
                    "AND (l.occurred_at, l.id) < (b.at, b.id) AND l.occurred_at < :cutoff "
                    "AND l.id <> ALL(b.spared) "
                    "AND NOT (b.spare_failures AND l.event_type = 'sync_finished' AND l.outcome = 'error')"
                ),
                {"cutoff": cutoff},
            ).rowcount
        seconds = time.perf_counter() - started
    engine.dispose()
    return {"deleted": deleted, "delete_seconds": round(seconds, 2), "plan_seconds": round(planned, 2)}


def explain_prune(url: str, days: int) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """A second prune (the daily case), its distinct statements captured, then each explained."""
    engine = db.engine(url)
    seen: dict[str, Any] = {}

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.setdefault(statement, parameters)

    event.listen(engine, "before_cursor_execute", capture)
    started = time.perf_counter()
    pruned = retention.prune(engine, days)
    wall = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", capture)
    report, queries = [], []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen.items():
            if not statement.lstrip().upper().startswith(("SELECT", "DELETE")):
                continue
            cursor.execute("BEGIN")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("ROLLBACK")
            unindexed = "Seq Scan on crm_sync_log" in plan
            queries.append({"statement": " ".join(statement.split())[:200], "served_by_index": not unindexed})
            report.append(f"-- {' '.join(statement.split())}\n-- parameters: {parameters}\n{plan}\n")
        cursor.close()
    finally:
        raw.close()
    daily = {"wall_seconds": round(wall, 2), "deleted": pruned.deleted, "batches": pruned.batches}
    return daily, queries, "\n".join(report)


def clone(source_url: str) -> str:
    name = f"nh_bench_clone_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source_url.rsplit("/", 1)[1]}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop(url: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def load(url: str, args: argparse.Namespace) -> tuple[Engine, read_model_bench.World, float]:
    db.upgrade(url)
    engine = db.engine(url)
    world = read_model_bench.seed_accounts(engine, args.integrations, 10)
    runs = args.rows_per_integration // 4
    read_model_bench.RUN_EVERY_HOURS = max(1, round(args.span_days * 24 / runs))  # the loader reads it
    started = time.monotonic()
    read_model_bench.load_log_postgres(engine, world, args.integrations * args.rows_per_integration)
    return engine, world, time.monotonic() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--integrations", type=int, default=1000)
    parser.add_argument("--rows-per-integration", type=int, default=10_000)
    parser.add_argument("--span-days", type=int, default=730)
    parser.add_argument("--days", type=int, default=90, help="the retention window")
    parser.add_argument("--requests", type=int, default=300, help="page requests measured before pruning")
    parser.add_argument("--rest", type=float, default=retention.REST, help="the prune's rest after each step")
    parser.add_argument("--out", default="prune")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"machine": machine(), "uptime_start": uptime()}
    with tempfile.TemporaryDirectory(prefix="prune-bench-") as tmp, pg_database() as url:
        os.environ.update({k: v for k, v in app_env("", Path(tmp) / "home").items() if v})
        engine, world, load_seconds = load(url, args)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM crm_sync_log")).scalar_one()
            span = conn.execute(text("SELECT max(occurred_at) - min(occurred_at) FROM crm_sync_log")).scalar_one()
        log(f"{rows:,} rows over {span} loaded in {load_seconds:.0f} s; cloning for the bare DELETE")
        engine.dispose()
        db._engine_for.cache_clear()
        twin = clone(url)
        try:
            with (
                read_model_bench.app_server(
                    app_env(url, Path(tmp) / "serve"), read_model_bench.results_dir() / "prune_server.log"
                ) as base,
                httpx.Client(base_url=base, timeout=30) as client,
            ):
                page_latencies(client, world.small_orgs, lambda n: n >= 20)  # warm-up
                before = page_latencies(client, world.small_orgs, lambda n: n >= args.requests)
                log(f"page before: {summary_ms(before)}; pruning, the page under load meanwhile")
                result["uptime_prune_start"] = uptime()
                cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                child = subprocess.Popen(
                    [PYTHON, "-c", PRUNE_CHILD, url, str(args.days), str(args.rest)],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                during = page_latencies(client, world.small_orgs, lambda n: child.poll() is not None)
                out, _ = child.communicate()
                cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the prune child's, once reaped
                client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
                result["uptime_prune_end"] = uptime()
                assert child.returncode == 0, out
                after = page_latencies(client, world.small_orgs, lambda n: n >= args.requests)
            pruned = json.loads(out.strip().splitlines()[-1])
            log(f"prune: {pruned}; page during: {summary_ms(during)}")
            daily, queries, plans = explain_prune(url, args.days)
            (read_model_bench.results_dir() / "prune_plans_postgresql.txt").write_text(plans)
            db._engine_for.cache_clear()
            log("bare DELETE of the same rows on the clone")
            bare = bare_delete(twin, args.days)
        finally:
            drop(twin)
    p99_before, p99_during = summary_ms(before)["p99_ms"], summary_ms(during)["p99_ms"]
    result.update(
        {
            "rows": rows,
            "span": str(span),
            "integrations": args.integrations,
            "retention_days": args.days,
            "load_seconds": round(load_seconds, 1),
            "prune": pruned,
            "prune_client_cpu_seconds": round(client_cpu, 2),
            "rows_per_second": round(pruned["deleted"]["crm_sync_log"] / max(pruned["wall_seconds"], 1e-9)),
            "bare_delete": bare,
            "same_rows": bare["deleted"] == pruned["deleted"]["crm_sync_log"],
            "page_before": summary_ms(before),
            "page_during": summary_ms(during),
            "page_after": summary_ms(after),
            "p99_moved_ms": round(p99_during - p99_before, 2),
            "daily_prune": daily,
            "queries": queries,
            "all_served_by_index": all(q["served_by_index"] for q in queries),
            "uptime_end": uptime(),
            "window": str(timedelta(days=args.days)),
        }
    )
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
