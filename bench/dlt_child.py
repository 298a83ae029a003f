"""dlt's `rest_api` source loading the sandbox's Reapit contacts and applicants into PostgreSQL, for comparison.

Runs in its own venv (/work/venv-dlt: dlt's pins need not agree with Dagster's), so it imports nothing from
the project. bench/sync_bench.py starts it; it prints one JSON line: seconds, rows loaded, VmHWM.

Configured as a dlt user would for Reapit: its own bearer token fetched first from the token endpoint
(client credentials), the `page_number` paginator on Reapit's envelope (`pageNumber`, 1-based, stopping
at `totalPageCount`), records under `_embedded`, `write_disposition="merge"` on primary key `id`.
`max_table_nesting=0` keeps each record's nested parts as JSON columns, as our tables keep `raw`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import dlt
import psycopg2
import requests
from dlt.sources.rest_api import rest_api_source


def token(base_url: str, client_id: str, client_secret: str) -> str:
    answer = requests.post(
        f"{base_url}/token",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--customer", required=True)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--dataset", default="dlt_reapit")
    args = parser.parse_args()

    started = time.perf_counter()
    source = rest_api_source(
        {
            "client": {
                "base_url": args.base_url.rstrip("/") + "/",
                "auth": {"type": "bearer", "token": token(args.base_url, args.client_id, args.client_secret)},
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
        },
        max_table_nesting=0,
    )
    pipeline = dlt.pipeline(
        pipeline_name="reapit_bench",
        destination=dlt.destinations.postgres(credentials=args.pg_url),
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )
    pipeline.run(source)
    seconds = time.perf_counter() - started

    rows = {}
    with psycopg2.connect(args.pg_url) as conn, conn.cursor() as cur:
        for table in ("contacts", "applicants"):
            cur.execute(f'SELECT count(*) FROM "{args.dataset}"."{table}"')
            rows[table] = cur.fetchone()[0]
    sys.stdout.write(json.dumps({"seconds": round(seconds, 3), "rows": rows, "vmhwm_mb": vm_hwm_mb()}) + "\n")


if __name__ == "__main__":
    main()
