"""The page in headless Chromium: sign in, read the badges, Sync Now, and watch the log grow without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from nurturehub_pipelines.store import db
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
