"""dlt's `rest_api` source loading the fast CRM server's contacts and leads into PostgreSQL, for comparison.

Runs in its own venv (/work/venv-dlt: dlt's pins need not agree with Dagster's), so it imports nothing from
the project. bench/sync_bench.py starts it once per round with the same pipeline directory, so rounds 2 and
3 merge into what round 1 loaded. It prints one JSON line: the seconds of `pipeline.run` alone (and of the
whole `main`, token included), the rows it wrote this round per table (those carrying this round's
`_dlt_load_id`), the rows now in each table, and its VmHWM.

dlt's best settings for this data: `loader_file_format="csv"` (COPY into PostgreSQL), `max_table_nesting=0`
(each record's nested parts stay JSON columns, as our tables keep `raw`), `write_disposition="merge"` on
primary key `id`, its own dataset (schema). Open API: the `cursor` paginator (`meta.next_cursor`,
`cursor`), `limit=500`, records under `data`, a static bearer token. Reapit: its own bearer token fetched
first from the token endpoint (client credentials), the `page_number` paginator (`pageNumber`, 1-based,
stopping at `totalPageCount`), `pageSize=100` (Reapit's maximum), records under `_embedded`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import requests
from dlt.sources.rest_api import rest_api_source


def reapit_token(token_url: str, client_id: str, client_secret: str) -> str:
    answer = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": client_id},
        auth=(client_id, client_secret),
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def source_config(args: argparse.Namespace) -> tuple[dict[str, Any], tuple[str, str]]:
    """The rest_api config and the two table names."""
    base = args.base_url.rstrip("/") + "/"
    if args.crm == "openapi":
        return {
            "client": {
                "base_url": base,
                "auth": {"type": "bearer", "token": args.token},
                "paginator": {"type": "cursor", "cursor_path": "meta.next_cursor", "cursor_param": "cursor"},
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": "merge",
                "endpoint": {"params": {"limit": 500}, "data_selector": "data"},
            },
            "resources": [
                {"name": "contacts", "endpoint": {"path": "contacts"}},
                {"name": "leads", "endpoint": {"path": "leads"}},
            ],
        }, ("contacts", "leads")
    token = reapit_token(args.token_url, args.client_id, args.client_secret)
    return {
        "client": {
            "base_url": base,
            "auth": {"type": "bearer", "token": token},
            "headers": {"api-version": "2020-01-31", "reapit-customer": args.customer},
            "paginator": {
                "type": "page_number",
                "page_param": "pageNumber",
                "base_page": 1,
                "total_path": "totalPageCount",
            },
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"params": {"pageSize": 100, "sortBy": "modified"}, "data_selector": "_embedded"},
        },
        "resources": [
            {"name": "contacts", "endpoint": {"path": "contacts/"}},
            {"name": "applicants", "endpoint": {"path": "applicants/"}},
        ],
    }, ("contacts", "applicants")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crm", choices=("openapi", "reapit"), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", help="Open API: the static bearer token")
    parser.add_argument("--token-url", help="Reapit: the token endpoint")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--customer")
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--dataset", default="dlt_bench")
    args = parser.parse_args()

    started = time.perf_counter()
    config, tables = source_config(args)
    source = rest_api_source(config, max_table_nesting=0)  # type: ignore[arg-type]
    pipeline = dlt.pipeline(
        pipeline_name=f"{args.crm}_bench",
        destination=dlt.destinations.postgres(credentials=args.pg_url),
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )
    run_started = time.perf_counter()
    info = pipeline.run(source, loader_file_format="csv")
    ended = time.perf_counter()

    # Rows written this round: a merge rewrites each row it touches with this load's id. (The normalize
    # step's `row_counts` is no use with the csv writer: it counts values, not rows.)
    loads = list(info.loads_ids)
    rows, written = {}, {}
    with psycopg2.connect(args.pg_url) as conn, conn.cursor() as cur:
        for table in tables:
            cur.execute(f'SELECT count(*) FROM "{args.dataset}"."{table}"')
            rows[table] = cur.fetchone()[0]
            cur.execute(f'SELECT count(*) FROM "{args.dataset}"."{table}" WHERE _dlt_load_id = ANY(%s)', (loads,))
            written[table] = cur.fetchone()[0]
    answer = {
        "run_seconds": round(ended - run_started, 3),
        "main_seconds": round(ended - started, 3),
        "written": written,
        "rows": rows,
        "vmhwm_mb": vm_hwm_mb(),
    }
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
