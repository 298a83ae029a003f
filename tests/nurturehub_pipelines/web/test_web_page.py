"""The page without JavaScript: sign-in, server-rendered cards and log, and forms that POST-redirect-GET."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import update

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import users, utcnow

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

PAGE = "/dashboard/settings/integrations"


def card_html(page: str, integration_id: int) -> str:
    match = re.search(rf'<section class="card[^"]*" id="integration-{integration_id}".*?\n</section>', page, re.S)
    assert match, f"no card for integration {integration_id}"
    return match.group(0)


def test_sign_in_sets_a_safe_session_cookie_and_sign_out_ends_it(world: World) -> None:
    client = world.client()
    form = client.get("/signin")
    assert form.status_code == 200 and 'name="token"' in form.text
    wrong = client.post("/signin", data={"token": "nh_wrong"})
    assert wrong.status_code == 401 and "not recognised" in wrong.text
    answer = client.post("/signin", data={"token": world.tokens["owner"], "next": PAGE})
    assert answer.status_code == 303 and answer.headers["location"] == PAGE
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get(PAGE)
    assert page.status_code == 200 and world.emails["owner"] in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert client.post("/signout", data={}).status_code == 403  # sign-out is a POST, CSRF-protected too
    out = client.post("/signout", data={"csrf_token": csrf.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert client.get(PAGE).status_code == 303


def test_sign_in_refuses_cross_site_posts_and_open_redirects(world: World) -> None:
    client = world.client()
    forged = client.post("/signin", data={"token": world.tokens["owner"]}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    answer = client.post("/signin", data={"token": world.tokens["owner"], "next": "//evil.example/x"})
    assert answer.headers["location"] == PAGE


def test_a_new_token_ends_sessions_opened_with_the_old_one(world: World) -> None:
    client, _csrf = world.browser("admin")
    assert client.get(PAGE).status_code == 200
    with db.engine(world.db_url).begin() as conn:
        conn.execute(update(users).where(users.c.email == world.emails["admin"]).values(token_hash="0" * 64))
    assert client.get(PAGE).status_code == 303
    assert client.get("/api/integrations").status_code == 401


def test_the_page_shows_each_card_its_badge_errors_and_log(world: World) -> None:
    now = utcnow()
    world.finished_run(world.a_reapit, "warning", now - timedelta(hours=1), "3 contacts skipped: no email or phone")
    failure = "Street rejected NurtureHub's API token — reconnect Street in your CRM settings"
    error_id = world.finished_run(world.a_street, "error", now - timedelta(minutes=2), failure)
    client, _csrf = world.browser("admin")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    reapit, street = card_html(page.text, world.a_reapit), card_html(page.text, world.a_street)
    assert 'data-health="amber"' in reapit and "3 contacts skipped" in reapit
    assert 'data-health="red"' in street and "Action needed" in street
    assert "Street rejected NurtureHub&#39;s API token" in street  # escaped, in words
    assert "Street lettings" in street  # the display name beside the CRM name
    assert f"/errors/{error_id}/retry" in street and ">Retry<" in street
    assert re.search(r'<time datetime="[^"]+\+00:00" data-local="datetime">', reapit)  # readable without JS
    assert street.count("<tr data-log-id=") == 4
    for column in ("Time", "Event", "Records", "Skipped", "Outcome", "Message"):
        assert f">{column}</th>" in street
    assert "<code>contact_import</code>" in street
    assert "Other Agency" not in page.text and str(world.b_error_id) not in re.findall(
        r"data-log-id=\"(\d+)\"", page.text
    )


def test_sync_now_without_javascript_posts_redirects_and_shows_the_outcome(world: World) -> None:
    client, csrf = world.browser("owner")
    answer = client.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}#integration-{world.a_reapit}"
    page = client.get(PAGE).text
    card = card_html(page, world.a_reapit)
    assert "Sync Now requested" in card and "Syncing" in card
    assert "Sync Now requested by owner@harbour.example" in card  # the new log row
    again = client.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "already queued or running" in card_html(client.get(PAGE).text, world.a_reapit)
    assert "already queued or running" not in card_html(client.get(PAGE).text, world.a_reapit)  # shown once


def test_the_partial_has_the_cards_only(world: World) -> None:
    client, _csrf = world.browser("owner")
    partial = client.get(f"{PAGE}/cards")
    assert partial.status_code == 200
    assert f'id="integration-{world.a_reapit}"' in partial.text and "<html" not in partial.text
    assert world.client().get(f"{PAGE}/cards").status_code == 303


def test_page_form_posts_follow_the_access_rules(world: World) -> None:
    anonymous = world.client().post(f"{PAGE}/{world.a_reapit}/sync", data={})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    member, csrf = world.browser("member")
    assert member.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf}).status_code == 403
    owner, csrf = world.browser("owner")
    assert owner.post(f"{PAGE}/{world.b_reapit}/sync", data={"csrf_token": csrf}).status_code == 404
    assert world.client().get("/", follow_redirects=False).headers["location"] == PAGE


def test_serve_answers_over_http(world: World) -> None:
    """`nurturehub serve` calls web.app.serve(host, port): a real process on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"from nurturehub_pipelines.web.app import serve; serve('127.0.0.1', {port})"
    process = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "serve() exited"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/integrations", headers={
                    "Authorization": f"Bearer {world.tokens['owner']}"
                })  # fmt: skip
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve() did not listen"
                time.sleep(0.1)
        assert answer.status_code == 200 and len(answer.json()["integrations"]) == 2
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
