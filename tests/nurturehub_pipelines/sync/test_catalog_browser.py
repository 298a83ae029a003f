"""The Dagster UI's Catalog in headless Chromium: 12 CRM assets and the report, with integration partitions.

A real `dagster-webserver` on an embedded (SQLite) instance, after real syncs of two integrations against
the sandbox and one materialization of the report. Screenshots go to test-artifacts/catalog*.png.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from crm_resources.registry import CRMS, resource_from_env
from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.assets import sync_health_report
from nurturehub_pipelines.instance import ensure_embedded_instance
from nurturehub_pipelines.jobs import build_sync_job
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.run_contract import run_config, run_tags
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.sync.ops import CRM_KEY
from tests.nurturehub_pipelines.sync.conftest import FAST, integration_values

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
SYNCED = ("reapit", "alto")
# (page, text it shows once loaded, screenshot); reapit's integration is the first, id 1
VIEWS = (
    ("/assets/reapit/contacts?view=partitions&partition=1", "records_synced", "catalog-reapit-contacts-partitions.png"),
    ("/assets/reapit/contacts?view=events", "records_synced", "catalog-reapit-contacts-events.png"),
    ("/assets/sync_health_report", "By organisation", "catalog-sync-health-report.png"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def synced_instance(
    db_url: str,
    sandbox: SandboxServer,
    control: SandboxControl,
    crm_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """DAGSTER_HOME after a sync of one integration per CRM in SYNCED (two orgs) and one report."""
    monkeypatch.setenv("DAGSTER_HOME", "")  # restored after the test: ensure_embedded_instance sets it
    home = ensure_embedded_instance()
    with db.engine().begin() as conn:
        orgs = [
            accounts.create_org(conn, name, f"owner@{name.split()[0].lower()}.example")["org_id"]
            for name in ("Harbour Lettings", "Quay Estates")
        ]
        ids = {}
        for org, crm in zip(orgs, SYNCED, strict=True):
            control.dataset(crm, contacts=120, leads=80, malformed_contacts=2)
            ids[crm] = (org, accounts.add_integration(conn, org, crm, crm, *integration_values(crm, sandbox)))
    with DagsterInstance.get() as instance:
        for crm, (org, integration_id) in ids.items():
            result = build_sync_job(crm).execute_in_process(
                run_config=run_config(integration_id, full=True),
                tags=run_tags(integration_id, org, crm, "manual"),
                resources={CRM_KEY: resource_from_env(crm, **FAST)},
                instance=instance,
            )
            assert result.success
        assert materialize([sync_health_report], resources={"app_db": app_database_from_env()}, instance=instance)
    yield home


@pytest.fixture
def webserver(synced_instance: Path) -> Iterator[str]:
    port = free_port()
    dagster = str(Path(sys.executable).parent / "dagster-webserver")
    log = (synced_instance / "webserver.log").open("w")
    process = subprocess.Popen(
        [dagster, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(synced_instance)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, (synced_instance / "webserver.log").read_text()
                assert time.monotonic() < deadline, "dagster-webserver did not start in 120 s"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_catalog_shows_the_crm_assets_and_the_report(webserver: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.set_default_timeout(60_000)

        page.goto(f"{webserver}/assets?view=flat")
        page.get_by_text("sync_health_report").first.wait_for()
        skip = page.get_by_role("button", name="Skip")  # the UI's first-visit "join the community" dialog
        page.wait_for_timeout(2000)
        if skip.is_visible():
            skip.click()
        for crm in CRMS:
            for stream in ("contacts", "leads"):
                page.get_by_text(f"{crm} / {stream}", exact=True).first.wait_for()
        body = page.inner_text("body")
        assert body.count("1 partition") == len(SYNCED) * 2  # contacts and leads of each synced CRM
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "catalog.png"), full_page=True)

        for path, shown, name in VIEWS:
            page.goto(f"{webserver}{path}")
            page.get_by_text(shown).first.wait_for()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        browser.close()
