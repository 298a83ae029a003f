"""Every benchmark at a tiny size, side by side, then the README table rendered from what they wrote.

CI never runs the real sizes (bench/README.md); this only proves each script still runs end to end (real
sandbox, real job, real daemon, real uvicorn), so none can rot. dlt is skipped: it needs its own venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "bench" / "README.md"

# The benchmarks use PostgreSQL whatever the suite's engine, so once (in the PostgreSQL pass of `make test`) is enough.
pytestmark = pytest.mark.skipif(
    os.environ.get("NURTUREHUB_TEST_DB", "sqlite") != "postgres",
    reason="runs in the PostgreSQL pass (NURTUREHUB_TEST_DB=postgres)",
)


def test_every_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    env = {**os.environ, "NURTUREHUB_BENCH_RESULTS": str(results)}
    env.pop("DAGSTER_HOME", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--smoke", "--readme", str(readme)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]

    sync = json.loads((results / "sync.json").read_text())
    every = {"contacts": 200, "leads": 100}
    ours = sync["repeats"][0]["ours"]
    assert [ours[version]["written"] for version in ("r1", "r2", "r3")] == [every] * 3, "each round writes all"
    assert sync["repeats"][0]["sqlite"]["ours"]["written"] == every
    assert sync["server_proof"]["100"]["records"] == 300
    assert sync["server_proof"]["100"]["bytes_records_per_s"] > 0, "the undecoded pass paged every page"
    assert sync["incremental"]["requests"]["contacts"] <= 2 and sync["incremental"]["requests"]["leads"] <= 2
    assert sync["incremental"]["written"] == {"contacts": 1, "leads": 1}
    assert sync["summary"]["rounds"]["r1"]["ours_share_of_limit"] > 0, "the shipped engine measured against the limit"

    read_model = json.loads((results / "read_model.json").read_text())
    for engine in ("postgresql", "sqlite"):
        assert read_model[engine]["all_served_by_index"], read_model[engine]["queries"]
        assert read_model[engine]["http"]["log_100"]["n"] == 5
        assert read_model[engine]["http_raw_client"]["cards_org_of_10"]["n"] == 5
        assert read_model[engine]["direct"]["cards_org_of_100"]["n"] == 5  # the shipped read_model.cards

    dagster = json.loads((results / "dagster_overhead.json").read_text())
    assert dagster["latency"]["n"] == 1 and dagster["throughput"]["runs"] == 2
    fleet = json.loads((results / "dagster_fleet.json").read_text())["fleet"]
    assert fleet["runs"] == 3 and fleet["runs_at_once"]["peak"] >= 1  # every run of the tick succeeded
    assert fleet["cpu_s_per_run"]["daemon"] > 0 and fleet["tick_to_last_success_s"] > 0

    alerts = json.loads((results / "alert_latency.json").read_text())
    assert {"sqlite", "postgresql"} <= set(alerts)

    table = readme.read_text()
    assert "not run yet" not in table
    assert "| 4 | Scheduled sync" in table and "no-change scheduled syncs of one CRM" in table and "Index Scan" in table
    rendered = table.split("<!-- results:begin -->")[1].split("<!-- results:end -->")[0]
    assert "andidate" not in rendered, "every figure is of the shipped code, none of a patched copy"
    print(f"smoke run of every benchmark: {elapsed:.0f} s")


def test_the_prune_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """bench/prune_bench.py end to end (load, the page under load, prune, bare DELETE, plans), tiny."""
    env = {**os.environ, "NURTUREHUB_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.prune_bench", "--integrations", "20", "--rows-per-integration", "800",
         "--requests", "10", "--rest", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "prune.json").read_text())
    assert result["same_rows"] and result["prune"]["deleted"]["crm_sync_log"] > 0
    assert result["all_served_by_index"], result["queries"]
    assert result["page_during"]["n"] > 0 and result["daily_prune"]["deleted"]["crm_sync_log"] == 0
