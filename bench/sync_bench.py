"""Full and incremental sync: the real `sync_reapit` job from the sandbox over loopback into PostgreSQL,
side by side in one run with the limit (fetch+parse with nothing written, plus COPY alone) and with dlt.

    python -m bench.sync_bench [--contacts 100000] [--leads 50000] [--no-dlt] [--profile]

In order, on one fresh database and one sandbox process (Reapit, 100 records a page):
1. the limit, with the rate limit lifted: every page fetched with a bare keep-alive httpx client and parsed
   (`response.json()`), nothing written; then the same records, mapped beforehand, loaded with `COPY`
   (psycopg2 copy_expert) into tables made `LIKE contacts/leads INCLUDING ALL`. Alongside (not part of the
   limit) the connector alone (CrmClient.pages) and the mappers alone, to say where the time goes;
2. the full sync, rate limit lifted on both sides (sandbox off, resource 10**6 requests/s), in a child
   process: records/s and its peak RSS (the child's VmHWM);
3. the full sync at Reapit's published rate (sandbox 20 req/s, client 20/s: the 75 s floor for 1,500 pages);
4. the incremental sync (as scheduled) after touching 0.1 % of each stream: its time, and its requests per
   stream counted from the sandbox's request log;
5. dlt's `rest_api` source (merge on `id`, page-number paginator, its own bearer token) into the same
   database, rate limit lifted, from its own venv (/work/venv-dlt, created if missing).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import (
    PYTHON,
    REPO,
    Sandbox,
    app_env,
    log,
    machine,
    pg_database,
    results_dir,
    run_child,
    sandbox_process,
    write_result,
)
from crm_resources.reapit import ReapitResource, map_contact, map_lead
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import utcnow
from nurturehub_pipelines.sync.upsert import content_hash

CRM = "reapit"
PAGE_SIZE = 100  # what the client asks for and the sandbox serves
PUBLISHED_RATE = 20  # Reapit: 20 requests/s (crm-apis.md), in the sandbox and the client alike
STREAMS = (("contacts", "/contacts/", map_contact), ("leads", "/applicants/", map_lead))
COMMON_COLUMNS = ["source_updated_at", "deleted", "raw", "content_hash", "synced_at"]
CONTACT_COLUMNS = [
    *["integration_id", "external_id", "first_name", "last_name", "email", "phone", "marketing_consent"],
    *COMMON_COLUMNS,
]
LEAD_COLUMNS = ["integration_id", "external_id", "contact_external_id", "kind", "status", *COMMON_COLUMNS]
DLT_VENV = Path("/work/venv-dlt")


# --- the limit --------------------------------------------------------------------------------


def reapit_token(base_url: str) -> str:
    creds = SANDBOX_CREDENTIALS[CRM]
    answer = httpx.post(
        f"{base_url}/token",
        data={"grant_type": "client_credentials", "client_id": creds["client_id"]},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def bare_pages(base_url: str, path: str) -> Iterator[bytes]:
    """Every page of one endpoint with nothing but a keep-alive httpx client: the fetch floor."""
    headers = {
        "Authorization": f"Bearer {reapit_token(base_url)}",
        "api-version": "2020-01-31",
        "reapit-customer": SANDBOX_CREDENTIALS[CRM]["customer_id"],
        "Accept": "application/json",
    }
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        number, pages = 1, 1
        while number <= pages:
            answer = client.get(path, params={"pageSize": PAGE_SIZE, "pageNumber": number, "sortBy": "modified"})
            answer.raise_for_status()
            body = answer.json()  # the parse is part of the floor
            pages = body["totalPageCount"]
            number += 1
            yield answer.content


def measure_fetch(base_url: str) -> tuple[dict[str, float], dict[str, list[bytes]]]:
    """Seconds to fetch and parse each stream; the raw pages are kept (as bytes) for the COPY side."""
    seconds: dict[str, float] = {}
    kept: dict[str, list[bytes]] = {}
    for stream, path, _ in STREAMS:
        started = time.perf_counter()
        kept[stream] = list(bare_pages(base_url, path))
        seconds[stream] = time.perf_counter() - started
    return seconds, kept


def measure_connector(sandbox: Sandbox, settings: dict[str, str]) -> dict[str, float]:
    """The connector core alone (auth, limiter, retries, paging checks, JSON), nothing mapped or written."""
    creds = SANDBOX_CREDENTIALS[CRM]
    resource = ReapitResource(
        base_url=sandbox.urls["REAPIT_BASE_URL"],
        token_url=sandbox.urls["REAPIT_TOKEN_URL"],
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        rate_limit_requests=10**6,
        rate_limit_per_seconds=1.0,
    )
    out: dict[str, float] = {}
    with resource.client(settings, {}) as client:
        client.authenticate()
        for stream, _, _ in STREAMS:
            started = time.perf_counter()
            for _page in client.pages(stream, None):
                pass
            out[stream] = time.perf_counter() - started
    return out


def copy_rows(stream: str, integration_id: int, pages: list[bytes]) -> tuple[io.StringIO, float, int]:
    """The COPY text of a stream's records, mapped by the real mappers; returns (buffer, map seconds, rows).

    Mapping (and the content hash the upsert needs) is timed on its own: it is engine work the limit
    leaves out, reported so the gap between the sync and the limit can be attributed.
    """
    mapper = map_contact if stream == "contacts" else map_lead
    columns = CONTACT_COLUMNS if stream == "contacts" else LEAD_COLUMNS
    from crm_resources.core import Endpoint

    endpoint = Endpoint("/contacts/" if stream == "contacts" else "/applicants/")
    raws = [record for page in pages for record in json.loads(page)["_embedded"]]
    started = time.perf_counter()
    mapped = []
    for raw in raws:
        record = mapper(raw, endpoint)
        mapped.append((record, content_hash(record.raw)))
    map_seconds = time.perf_counter() - started
    now = utcnow().isoformat()
    buffer = io.StringIO()
    for record, digest in mapped:
        values = {name: getattr(record, name, None) for name in columns}
        values.update(
            integration_id=integration_id,
            raw=json.dumps(record.raw, separators=(",", ":")),
            content_hash=digest,
            synced_at=now,
            source_updated_at=record.source_updated_at.isoformat() if record.source_updated_at else None,
            deleted="t" if record.deleted else "f",
        )
        buffer.write("\t".join(_copy_text(values[name]) for name in columns) + "\n")
    buffer.seek(0)
    return buffer, map_seconds, len(mapped)


def _copy_text(value: Any) -> str:
    if value is None:
        return r"\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def measure_copy(database_url: str, buffers: dict[str, io.StringIO]) -> dict[str, float]:
    """COPY alone into tables of the same shape (LIKE ... INCLUDING ALL: the same indexes and defaults)."""
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


# --- the real job -----------------------------------------------------------------------------


def truncate(database_url: str) -> None:
    """An empty app database again (but the org and integration), so every full sync inserts everything."""
    with db.engine(database_url).begin() as conn:
        conn.execute(text("TRUNCATE contacts, leads, sync_cursors, skipped_records RESTART IDENTITY"))


def sync_once(
    env: dict[str, str],
    ids: tuple[int, int],
    *,
    full: bool,
    lift: bool,
    profile: Path | None = None,
    label: str,
) -> dict[str, Any]:
    argv = [PYTHON, "-m", "bench.sync_child", "--integration", str(ids[1]), "--org", str(ids[0])]
    argv += ["--full"] if full else ["--trigger", "schedule"]
    argv += ["--lift"] if lift else []
    if profile:
        argv += ["--profile", str(profile)]
    child = run_child(argv, env, stderr=results_dir() / f"sync_{label}.log")
    answer = child.answer
    if not answer.get("success"):
        raise RuntimeError(f"the {label} sync failed: {answer}")
    return {**answer, "process_wall_seconds": round(child.wall_seconds, 3)}


def expect_written(run: dict[str, Any], contacts: int, leads: int, label: str) -> None:
    events = run["events"]
    got = (events["contact_import"]["records_affected"], events["lead_update"]["records_affected"])
    if got != (contacts, leads):
        raise RuntimeError(f"the {label} sync wrote {got}, expected {(contacts, leads)}: {events}")


def rate(records: int, seconds: float) -> float:
    return round(records / seconds, 1) if seconds else 0.0


# --- dlt --------------------------------------------------------------------------------------


def ensure_dlt_venv() -> Path:
    """dlt in a venv of its own (its pins need not agree with Dagster's); created on first use."""
    python = DLT_VENV / "bin" / "python"
    usable = python.exists() and subprocess.run([str(python), "-c", "import dlt, psycopg2"]).returncode == 0
    if not usable:
        log(f"creating {DLT_VENV} with dlt[postgres] (once)")
        subprocess.run([PYTHON, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run([str(DLT_VENV / "bin" / "pip"), "install", "--quiet", "dlt[postgres]"], check=True)
    return python


def run_dlt(sandbox: Sandbox, database_url: str) -> dict[str, Any]:
    python = ensure_dlt_venv()
    url = make_url(database_url)
    # dlt insists on a password; the local server's trust auth ignores it.
    plain = f"postgresql://{url.username}:{url.password or 'trust'}@{url.host}:{url.port}/{url.database}"
    creds = SANDBOX_CREDENTIALS[CRM]
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as work:
        argv = [
            str(python),
            str(REPO / "bench" / "dlt_child.py"),
            "--base-url", sandbox.urls["REAPIT_BASE_URL"],
            "--client-id", creds["client_id"],
            "--client-secret", creds["client_secret"],
            "--customer", creds["customer_id"],
            "--pg-url", plain,
            "--pipelines-dir", work,
        ]  # fmt: skip
        env = {"DLT_DATA_DIR": work, "RUNTIME__LOG_LEVEL": "WARNING"}
        child = run_child(argv, env, stderr=results_dir() / "dlt.log", cwd=Path(work))
    version = subprocess.run([str(python), "-c", "import dlt; print(dlt.__version__)"], capture_output=True, text=True)
    return {**child.answer, "dlt_version": version.stdout.strip()}


# --- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--changed-contacts", type=int, help="touched before the incremental sync (0.1 %%)")
    parser.add_argument("--changed-leads", type=int, help="touched before the incremental sync (0.1 %%)")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt comparison (it needs its own venv)")
    parser.add_argument("--no-published", action="store_true", help="skip the run at the published rate")
    parser.add_argument(
        "--profile", action="store_true", help="one more lifted full sync, under pyinstrument (bench/results/)"
    )
    parser.add_argument("--out", default="sync", help="result name under bench/results/")
    args = parser.parse_args(argv)
    contacts, leads = args.contacts, args.leads
    records = contacts + leads
    changed = (
        args.changed_contacts if args.changed_contacts is not None else max(1, contacts // 1000),
        args.changed_leads if args.changed_leads is not None else max(1, leads // 1000),
    )
    result: dict[str, Any] = {
        "machine": machine(),
        "workload": {"crm": CRM, "contacts": contacts, "leads": leads, "page_size": PAGE_SIZE},
    }

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as work, pg_database() as database_url:
        db.upgrade(database_url)
        with db.engine(database_url).begin() as conn:
            org = accounts.create_org(conn, "Bench Lettings", "owner@bench.example")
            integration = accounts.add_integration(conn, org["org_id"], CRM, "Reapit", {"customer_id": "SBOX"}, {})
        ids = (org["org_id"], integration)
        settings = {"customer_id": SANDBOX_CREDENTIALS[CRM]["customer_id"]}
        with sandbox_process() as sandbox, SandboxControl(sandbox.root_url) as control:
            env = {**app_env(database_url, Path(work) / "home"), **sandbox.crm_env()}
            control.dataset(CRM, contacts=contacts, leads=leads)
            base_url = sandbox.urls["REAPIT_BASE_URL"]

            # 1. The limit, rate limit lifted.
            control.rate_limit(CRM, None)
            log(f"limit: fetch+parse {records:,} records, nothing written")
            fetch, pages = measure_fetch(base_url)
            log("limit: the connector alone")
            connector = measure_connector(sandbox, settings)
            buffers, mapping = {}, {}
            for stream, _, _ in STREAMS:
                buffers[stream], mapping[stream], count = copy_rows(stream, integration, pages[stream])
                assert count == (contacts if stream == "contacts" else leads), (stream, count)
            del pages
            log("limit: COPY alone")
            copy = measure_copy(database_url, buffers)
            del buffers
            floor = sum(fetch.values()) + sum(copy.values())
            result["limit"] = {
                "fetch_parse_seconds": {k: round(v, 3) for k, v in fetch.items()},
                "copy_seconds": {k: round(v, 3) for k, v in copy.items()},
                "seconds": round(floor, 3),
                "records_per_s": rate(records, floor),
                "connector_only_seconds": {k: round(v, 3) for k, v in connector.items()},
                "map_only_seconds": {k: round(v, 3) for k, v in mapping.items()},
            }

            # 2. The full sync, rate limit lifted on both sides.
            log("full sync, rate limit lifted")
            lifted = sync_once(env, ids, full=True, lift=True, label="full_lifted")
            expect_written(lifted, contacts, leads, "lifted full")
            lifted["records_per_s"] = rate(records, lifted["job_seconds"])
            lifted["share_of_limit"] = round(lifted["records_per_s"] / result["limit"]["records_per_s"], 3)
            result["full_lifted"] = lifted

            if args.profile:  # a run of its own: the profiler's overhead must not touch the figures
                truncate(database_url)
                log("full sync, rate limit lifted, under pyinstrument (not a figure)")
                profile = results_dir() / "full_sync_profile"
                sync_once(env, ids, full=True, lift=True, profile=profile, label="profile")
                result["profile"] = f"{profile}.txt"

            # 3. The full sync at the published rate.
            control.rate_limit(CRM, PUBLISHED_RATE, 1.0)
            if not args.no_published:
                truncate(database_url)
                log(f"full sync at the published rate ({PUBLISHED_RATE} req/s)")
                published = sync_once(env, ids, full=True, lift=False, label="full_published")
                expect_written(published, contacts, leads, "published-rate full")
                published["records_per_s"] = rate(records, published["job_seconds"])
                pages_total = -(-contacts // PAGE_SIZE) - (-leads // PAGE_SIZE)
                published["floor_seconds"] = round(pages_total / PUBLISHED_RATE, 1)
                result["full_published"] = published

            # 4. The incremental sync, as the schedule runs it (published rate), after 0.1 % changed.
            touched = control.touch(CRM, contacts=changed[0], leads=changed[1])
            assert len(touched["contacts"]) == changed[0] and len(touched["leads"]) == changed[1], touched
            control.clear_requests(CRM)
            log(f"incremental sync: {changed[0]} contacts and {changed[1]} leads changed")
            incremental = sync_once(env, ids, full=False, lift=False, label="incremental")
            expect_written(incremental, *changed, "incremental")
            by_path = Counter(entry["path"] for entry in control.requests(CRM))
            incremental["changed"] = {"contacts": changed[0], "leads": changed[1]}
            incremental["requests"] = {
                "contacts": by_path["/contacts/"],
                "leads": by_path["/applicants/"],
                "token": by_path["/token"],
            }
            incremental["share_of_full_lifted"] = round(incremental["job_seconds"] / lifted["job_seconds"], 4)
            result["incremental"] = incremental

            # 5. dlt, rate limit lifted.
            if not args.no_dlt:
                control.rate_limit(CRM, None)
                log("dlt rest_api, merge, rate limit lifted")
                dlt = run_dlt(sandbox, database_url)
                if dlt["rows"] != {"contacts": contacts, "applicants": leads}:
                    raise RuntimeError(f"dlt loaded {dlt['rows']}")
                dlt["records_per_s"] = rate(records, dlt["seconds"])
                result["dlt"] = dlt

    write_result(args.out, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
