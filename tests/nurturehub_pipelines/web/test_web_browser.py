"""The page in headless Chromium: sign in, read the badges, Sync Now, and watch the log grow without a reload;
pause and resume a card; reconnect Street and watch its card turn green after the sync."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store import sync_requests as sync_requests_store
from nurturehub_pipelines.store.tables import sync_requests, utcnow

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.nurturehub_pipelines.web.conftest import World

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        chromium.close()


def test_sign_in_see_health_sync_now_and_watch_the_log(world: World, browser: Browser) -> None:
    now = utcnow()
    world.finished_run(world.a_reapit, "success", now - timedelta(minutes=50))
    world.finished_run(world.a_street, "success", now - timedelta(hours=5))
    world.finished_run(
        world.a_street, "error", now - timedelta(minutes=20),
        "Street rejected NurtureHub's API token — reconnect Street in your CRM settings",
    )  # fmt: skip

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="Europe/London")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)

    page.goto(f"{world.base_url}/dashboard/settings/integrations")
    assert "/signin" in page.url
    page.get_by_label("Access token").fill(world.tokens["owner"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/settings/integrations")

    reapit = page.locator(f"#integration-{world.a_reapit}")
    street = page.locator(f"#integration-{world.a_street}")
    assert reapit.locator(".badge").get_attribute("data-health") == "green"
    assert "Healthy" in reapit.locator(".badge").inner_text()
    assert street.locator(".badge").get_attribute("data-health") == "red"
    assert "reconnect Street" in street.locator(".reason").inner_text()
    last_synced = reapit.locator("dd time").first
    page.wait_for_function("el => !el.textContent.includes('UTC')", arg=last_synced.element_handle())

    page.evaluate("window.__noReload = true")
    reapit.get_by_role("button", name="Sync Now").click()
    requested = reapit.locator("tr", has_text="Sync Now requested by owner@harbour.example")
    requested.wait_for(timeout=10_000)
    reapit.get_by_text("Syncing").first.wait_for(timeout=10_000)
    assert "Sync requested" in reapit.locator(".notice").inner_text()

    # Complete the request as the sensor and the run would: launched with a run id, then the run's rows.
    with db.engine(world.db_url).begin() as conn:
        conn.execute(update(sync_requests).values(status="launched", launched_at=utcnow(), run_id="browser-run"))
    world.finished_run(
        world.a_reapit, "warning", utcnow(), "2 contacts skipped: no email or phone", run_id="browser-run"
    )
    reapit.locator("tr", has_text="2 contacts skipped").wait_for(timeout=10_000)
    page.wait_for_function(
        "id => document.querySelector('#integration-' + id + ' .badge').dataset.health === 'amber'",
        arg=world.a_reapit,
        timeout=10_000,
    )
    assert reapit.locator(".syncing").count() == 0
    assert page.evaluate("window.__noReload") is True  # the page updated itself, it was not reloaded

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("body").evaluate("el => el.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "integrations-page.png"), full_page=True)
    assert problems == []
    context.close()


def sync_as_the_sensor_would(world: World, sandbox_env: dict[str, str], dagster_home: Path) -> str:
    """Launch the page's pending Sync Now request: mark it launched, run its job (a real sync against the
    sandbox, in its own process as a run worker is), then record its run id, as the request sensor does."""
    with db.engine(world.db_url).begin() as conn:
        request = sync_requests_store.active_request(conn, world.a_street)
        assert request is not None and request.trigger == "sync_now"
        sync_requests_store.mark_launched(conn, request.id, utcnow())
    code = (
        "import sys; from nurturehub_pipelines.local_sync import run_sync; "
        "s = run_sync(int(sys.argv[1]), True, 'sync_now'); print(s.run_id, s.outcome)"
    )
    env = {**os.environ, **sandbox_env, "DAGSTER_HOME": str(dagster_home)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(world.a_street)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_id, outcome = done.stdout.split()[-2:]
    assert outcome == "success", done.stdout
    with db.engine(world.db_url).begin() as conn:
        sync_requests_store.set_run_id(conn, request.id, run_id)
    return run_id


def test_pause_resume_and_reconnect_street_until_its_card_is_green(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    now = utcnow()
    world.finished_run(world.a_reapit, "success", now - timedelta(minutes=50))
    world.finished_run(
        world.a_street, "error", now - timedelta(minutes=20),
        "Street rejected NurtureHub's API token — reconnect Street in your CRM settings",
    )  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="Europe/London")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(f"{world.base_url}/signin")
    page.get_by_label("Access token").fill(world.tokens["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/settings/integrations")
    ARTIFACTS.mkdir(exist_ok=True)
    reapit = page.locator(f"#integration-{world.a_reapit}")
    street = page.locator(f"#integration-{world.a_street}")

    # Pause: a plain form post, back on the card with a notice and the reason in words.
    reapit.get_by_role("button", name="Pause scheduled syncs of Reapit").click()
    reapit.locator(".paused", has_text="Paused by admin@harbour.example").wait_for(timeout=10_000)
    assert "Paused" in reapit.locator(".state-paused").inner_text()
    assert reapit.locator(".notice").inner_text() == "Paused Reapit."
    assert reapit.locator("dd", has_text="Paused").count() == 1  # no next scheduled sync
    page.screenshot(path=str(ARTIFACTS / "integrations-paused.png"), full_page=True)

    # Resume: the reason goes, the next sync comes back.
    reapit.get_by_role("button", name="Resume scheduled syncs of Reapit").click()
    reapit.get_by_role("button", name="Pause scheduled syncs of Reapit").wait_for(timeout=10_000)
    assert reapit.locator(".paused").count() == 0 and reapit.locator(".state-paused").count() == 0
    assert "syncs on its schedule again" in reapit.locator(".notice").inner_text()

    # Reconnect Street with the sandbox's (valid) token; the page asks for a Sync Now as well.
    token = SANDBOX_CREDENTIALS["street"]["api_token"]
    assert street.locator(".badge").get_attribute("data-health") == "red"
    street.locator("summary", has_text="Reconnect").click()  # a <summary>: opens without script
    field = street.get_by_label("API token")
    assert field.get_attribute("type") == "password"
    field.fill(token)
    page.wait_for_timeout(3500)  # a refresh of the cards passes: the open form and what was typed stay
    assert field.input_value() == token
    street.locator(".reconnect-panel").screenshot(path=str(ARTIFACTS / "integrations-reconnect-form.png"))
    page.screenshot(path=str(ARTIFACTS / "integrations-reconnect-open.png"), full_page=True)
    street.get_by_role("button", name="Save and sync").click()
    street.locator(".notice", has_text="Reconnected — syncing now").wait_for(timeout=10_000)
    street.get_by_text("Syncing").first.wait_for(timeout=10_000)
    assert token not in page.content()
    street.locator("summary", has_text="Reconnect").click()
    assert street.get_by_label("API token").input_value() == ""  # never shown again
    street.locator("summary", has_text="Reconnect").click()  # closed again: an open form holds the card still

    page.evaluate("window.__noReload = true")
    with SandboxServer() as sandbox, SandboxControl(sandbox.root_url) as control:
        control.reset()
        control.dataset("street", contacts=12, leads=6)
        (tmp_path / "dagster").mkdir()
        sync_as_the_sensor_would(world, sandbox.base_urls(), tmp_path / "dagster")
    page.wait_for_function(
        "id => { const card = document.querySelector('#integration-' + id);"
        " return card.querySelector('.badge').dataset.health === 'green' && !card.querySelector('.syncing'); }",
        arg=world.a_street,
        timeout=15_000,
    )
    assert street.locator(".reason").count() == 0
    street.locator("tr", has_text="12").first.wait_for(timeout=5_000)
    assert page.evaluate("window.__noReload") is True  # it turned green by itself
    page.screenshot(path=str(ARTIFACTS / "integrations-reconnected.png"), full_page=True)
    assert token not in page.content()
    assert problems == []
    context.close()
