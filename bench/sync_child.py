"""One sync through the real `sync_<crm>` job, optionally under pyinstrument: `sync_bench --profile`.

The measured syncs are `nurturehub sync` itself; this child exists for the profile (the job run in process
with a profiler around it, its figures no figure). Run by bench/sync_bench.py (not by hand): the environment
carries the app database and the CRM's URLs and app credentials, as a deployment's would. Prints one JSON
line: the job's time, the process's VmHWM and the run's crm_sync_log rows.
"""

from __future__ import annotations

import argparse
import time

STARTED = time.perf_counter()

from dagster import DagsterInstance  # noqa: E402  (import time is reported, so the clock starts first)
from sqlalchemy import select  # noqa: E402

from bench.common import emit, vm_hwm_mb  # noqa: E402
from crm_resources.registry import resource_from_env  # noqa: E402
from nurturehub_pipelines.jobs import build_sync_job  # noqa: E402
from nurturehub_pipelines.run_contract import run_config, run_tags  # noqa: E402
from nurturehub_pipelines.store import db  # noqa: E402
from nurturehub_pipelines.store.tables import crm_sync_log  # noqa: E402
from nurturehub_pipelines.sync.ops import CRM_KEY  # noqa: E402

# The rate limit lifted on the client's side (the bench lifts the sandbox's too): measures the engine itself.
LIFTED = {"rate_limit_requests": 10**6, "rate_limit_per_seconds": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crm", default="openapi")
    parser.add_argument("--integration", type=int, required=True)
    parser.add_argument("--org", type=int, required=True)
    parser.add_argument("--full", action="store_true", help="a full sync (default: incremental, as scheduled)")
    parser.add_argument("--lift", action="store_true", help="lift the client's rate limit")
    parser.add_argument("--trigger", default="manual")
    parser.add_argument("--profile", help="write a pyinstrument profile of the job here (.txt and .html)")
    args = parser.parse_args()

    job = build_sync_job(args.crm)
    resource = resource_from_env(args.crm, **(LIFTED if args.lift else {}))
    imported = time.perf_counter()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    with DagsterInstance.ephemeral() as instance:
        began = time.perf_counter()
        result = job.execute_in_process(
            run_config=run_config(args.integration, args.full),
            tags=run_tags(args.integration, args.org, args.crm, args.trigger),
            resources={CRM_KEY: resource},
            instance=instance,
            raise_on_error=False,
        )
        job_seconds = time.perf_counter() - began
    if profiler:
        profiler.stop()
        with open(args.profile + ".txt", "w") as out:
            out.write(profiler.output_text(unicode=False, color=False))
        with open(args.profile + ".html", "w") as out:
            out.write(profiler.output_html())
    with db.engine().connect() as conn:
        rows = conn.execute(select(crm_sync_log).where(crm_sync_log.c.run_id == result.run_id)).mappings()
        events = {
            row["event_type"]: {k: row[k] for k in ("outcome", "records_affected", "records_skipped", "message")}
            for row in rows
        }
    emit(
        {
            "success": result.success,
            "run_id": result.run_id,
            "import_seconds": round(imported - STARTED, 3),
            "job_seconds": round(job_seconds, 3),
            "vmhwm_mb": vm_hwm_mb(),
            "events": events,
        }
    )


if __name__ == "__main__":
    main()
