"""Where a full sync's CPU goes, per record: the profile-driven pass over parsing, mapping, hashing and
COPY-text building (issue 12), each stage as the engine ran it before the pass and as it runs it now.

    python -m bench.engine_profile [--contacts 100000] [--leads 50000] [--repeat 5]

The records are the fast CRM server's Open API records (bench/fast_crm.py), rendered to pages of 500 as the
server sends them. Every stage is timed with `time.process_time` (this process's CPU, so other load on the
machine moves it less than wall time would), the best of `--repeat` passes, garbage collector off during the
pass (a full sync's process frees each batch; a pass that keeps 150,000 records alive would time the
collector instead). "Before" is the engine of 1325d6d (before the pass), stage for stage:

| stage | before | now |
|---|---|---|
| parse a page | httpx `response.json()` (stdlib json) | `orjson.loads` (client.py `_json`) |
| map a record | (not kept: only `is_object` changed, an exact-type test first) | the CRM mapper |
| canonical JSON + hash | `json.dumps(sort_keys=True)` + sha256 | `canonical_json` (orjson, byte-identical) + sha256 |
| build the COPY row | a dict per row, `_copy_field` per column | `RowBatch.add`: one line per record, no dict |

The "before" builders below are the old engine's, kept here only as the baseline they measure.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.dialects import postgresql

from bench import fast_crm
from bench.common import machine, write_result
from crm_resources.core import Endpoint
from crm_resources.openapi import map_contact, map_lead
from crm_resources.records import Contact, Lead
from nurturehub_pipelines.store.tables import contacts, leads
from nurturehub_pipelines.sync.canonical import canonical_json, digest
from nurturehub_pipelines.sync.upsert import RowBatch, RowBuilder

PAGE = 500


def best_us(stage: Callable[[], object], records: int, repeat: int) -> float:
    """The best pass's CPU microseconds per record."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        started = time.process_time()
        stage()
        times.append(time.process_time() - started)
        gc.enable()
    return round(min(times) / records * 1e6, 2)


# --- the baseline: the engine before the pass (1325d6d), for comparison only ---------------------------


def _old_canonical(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))


def _old_copy_field(value: Any) -> str:
    if type(value) is str:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        value = json.dumps(value, default=str)
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _old_rows(records: list[Contact] | list[Lead], columns: list[str]) -> str:
    now = datetime.now(UTC)
    names = tuple(f.name for f in fields(type(records[0])))
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = {name: getattr(record, name) for name in names}
        raw_json = _old_canonical(record.raw)
        row.update(integration_id=1, content_hash=hashlib.sha256(raw_json.encode()).hexdigest())
        row["synced_at"] = now
        row["raw"] = raw_json
        rows[record.external_id] = row
    return "".join("\t".join(_old_copy_field(row[name]) for name in columns) + "\n" for row in rows.values())


# --- the run ------------------------------------------------------------------------------------------


def pages_of(stream: str, count: int, other: int) -> list[bytes]:
    """The server's own page bytes for one stream (version r1), pages of `PAGE`."""
    data = fast_crm.build_stream("openapi", stream, "r1", *((count, other) if stream == "contacts" else (other, count)))
    return [fast_crm.openapi_page(data, start, PAGE) for start in range(0, count, PAGE)]


def stream_stages(stream: str, count: int, other: int, repeat: int) -> dict[str, dict[str, float]]:
    """One stream's stages, before and now, in CPU microseconds per record."""
    mapper = map_contact if stream == "contacts" else map_lead
    table = contacts if stream == "contacts" else leads
    endpoint = Endpoint(f"/{stream}")
    pages = pages_of(stream, count, other)
    raws = [record for page in pages for record in orjson.loads(page)["data"]]
    records = [mapper(raw, endpoint) for raw in raws]
    columns = [c.name for c in table.columns if c.name != "id"]

    def build() -> None:
        batch = RowBatch(RowBuilder(table, 1, postgresql.dialect()))
        for record in records:
            batch.add(record)

    n = len(records)
    return {
        "parse": {
            "before": best_us(lambda: [json.loads(page) for page in pages], n, repeat),
            "now": best_us(lambda: [orjson.loads(page) for page in pages], n, repeat),
        },
        "map": {"now": best_us(lambda: [mapper(raw, endpoint) for raw in raws], n, repeat)},
        "canonical_json_and_hash": {
            "before": best_us(
                lambda: [hashlib.sha256(_old_canonical(r.raw).encode()).hexdigest() for r in records], n, repeat
            ),
            "now": best_us(lambda: [digest(canonical_json(r.raw)) for r in records], n, repeat),
        },
        "copy_row_incl_hash": {
            "before": best_us(lambda: _old_rows(records, columns), n, repeat),
            "now": best_us(build, n, repeat),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="engine_profile")
    args = parser.parse_args(argv)
    stages = {
        "contacts": stream_stages("contacts", args.contacts, args.leads, args.repeat),
        "leads": stream_stages("leads", args.leads, args.contacts, args.repeat),
    }
    total = args.contacts + args.leads
    weighted = {
        stage: {
            side: round(
                sum(stages[s][stage][side] * (args.contacts if s == "contacts" else args.leads) for s in stages)
                / total,
                2,
            )
            for side in stages["contacts"][stage]
        }
        for stage in stages["contacts"]
    }
    result = {"machine": machine(), "records": total, "us_per_record": stages, "weighted_us_per_record": weighted}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
