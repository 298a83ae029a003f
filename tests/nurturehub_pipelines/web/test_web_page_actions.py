"""The page's Pause/Resume and Reconnect forms without JavaScript: plain POSTs that redirect back with a
notice, following the access rules and CSRF, reading no body before authentication, echoing no credential."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from nurturehub_pipelines.store import db, integration_changes
from nurturehub_pipelines.store.tables import integrations, sync_requests, utcnow
from tests.support import integration_rows as rows

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

PAGE = "/dashboard/settings/integrations"
NEW_TOKEN = "street-token-NEW-typed-in-the-form-0815"


def card_html(page: str, integration_id: int) -> str:
    match = re.search(rf'<section class="card[^"]*" id="integration-{integration_id}".*?\n</section>', page, re.S)
    assert match, f"no card for integration {integration_id}"
    return match.group(0)


def snapshot(world: World) -> dict[str, Any]:
    return rows.snapshot(world.db_url)


def stored(world: World, integration_id: int) -> dict[str, Any]:
    return rows.stored(world.db_url, integration_id)


def post_and_follow(client: httpx.Client, path: str, data: dict[str, str]) -> str:
    """A form post as a browser without JavaScript makes it: 303 back to the card, then the page."""
    answer = client.post(path, data=data)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{PAGE}#integration-{path.split('/')[4]}"
    page = client.get(PAGE)
    assert page.status_code == 200
    return page.text


def test_pause_then_resume_from_the_page(world: World) -> None:
    client, csrf = world.browser("admin")
    card = card_html(client.get(PAGE).text, world.a_reapit)
    assert f'action="{PAGE}/{world.a_reapit}/pause"' in card and ">Pause</button>" in card
    assert "Paused" not in card

    page = post_and_follow(client, f"{PAGE}/{world.a_reapit}/pause", {"csrf_token": csrf})
    card = card_html(page, world.a_reapit)
    assert "Paused Reapit." in card  # the notice, once
    assert "Paused by admin@harbour.example." in card and 'data-enabled="false"' in card
    assert f'action="{PAGE}/{world.a_reapit}/resume"' in card and ">Resume</button>" in card
    assert "<dt>Next scheduled sync</dt><dd>Paused</dd>" in card
    assert stored(world, world.a_reapit)["paused_by"] == "admin@harbour.example"
    assert "Paused Reapit." not in card_html(client.get(PAGE).text, world.a_reapit)  # shown once
    assert "Pause" in card_html(page, world.a_street) and "Paused by" not in card_html(page, world.a_street)

    page = post_and_follow(client, f"{PAGE}/{world.a_reapit}/resume", {"csrf_token": csrf})
    card = card_html(page, world.a_reapit)
    assert "Resumed: Reapit syncs on its schedule again." in card
    assert "Paused by" not in card and ">Pause</button>" in card
    assert re.search(r"<dt>Next scheduled sync</dt><dd><time datetime=", card)
    assert stored(world, world.a_reapit)["enabled"] is True
    page = post_and_follow(client, f"{PAGE}/{world.a_reapit}/resume", {"csrf_token": csrf})
    assert "Reapit was already running on its schedule." in card_html(page, world.a_reapit)


def test_a_held_card_says_why_and_offers_reconnect(world: World) -> None:
    with db.engine(world.db_url).begin() as conn:
        integration_changes.quarantine(conn, world.a_street, "street", utcnow())
    client, _csrf = world.browser("owner")
    card = card_html(client.get(PAGE).text, world.a_street)
    assert "Waiting for new Street credentials: Street rejected the last ones." in card
    assert "<dt>Next scheduled sync</dt><dd>On hold</dd>" in card
    assert 'aria-label="Reconnect Street"' in card
    assert 'type="password"' in card and 'name="credential.api_token"' in card
    assert "Reconnect" not in card_html(client.get(PAGE).text, world.a_reapit)  # NurtureHub's own credentials
    client, csrf = world.browser("admin")
    post_and_follow(client, f"{PAGE}/{world.a_street}/pause", {"csrf_token": csrf})
    card = card_html(post_and_follow(client, f"{PAGE}/{world.a_street}/resume", {"csrf_token": csrf}), world.a_street)
    assert "Resumed, but waiting for new Street credentials: Street rejected the last ones." in card


def test_reconnect_stores_the_new_token_lifts_the_hold_and_syncs_now(
    world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    world.finished_run(world.a_street, "error", utcnow() - timedelta(minutes=5), "Street rejected the API token")
    with db.engine(world.db_url).begin() as conn:
        integration_changes.quarantine(conn, world.a_street, "street", utcnow())
    client, csrf = world.browser("admin")
    page = post_and_follow(
        client, f"{PAGE}/{world.a_street}/reconnect", {"csrf_token": csrf, "credential.api_token": f" {NEW_TOKEN} "}
    )
    card = card_html(page, world.a_street)
    assert "Reconnected — syncing now." in card and "Syncing" in card
    assert "Sync Now requested by admin@harbour.example" in card
    assert "Waiting for new Street credentials" not in card
    row = stored(world, world.a_street)
    assert row["credentials"] == {"api_token": NEW_TOKEN} and row["quarantined_at"] is None
    with db.engine(world.db_url).connect() as conn:
        requests = conn.execute(select(sync_requests.c.trigger, sync_requests.c.requested_by)).all()
    assert [tuple(r) for r in requests] == [("sync_now", "admin@harbour.example")]
    again = post_and_follow(
        client, f"{PAGE}/{world.a_street}/reconnect", {"csrf_token": csrf, "credential.api_token": NEW_TOKEN}
    )
    assert "Reconnected. A sync was already queued or running" in card_html(again, world.a_street)
    out, err = capfd.readouterr()
    for text in (page, again, caplog.text, out, err, str(client.cookies)):
        assert NEW_TOKEN not in text and world.secret not in text


RECONNECT_REFUSALS = {
    "nothing typed": ({"credential.api_token": ""}, "type the new API token to reconnect"),
    "spaces only": ({"credential.api_token": "   "}, "type the new API token to reconnect"),
}


@pytest.mark.parametrize("case", RECONNECT_REFUSALS)
def test_a_refused_reconnect_says_why_and_writes_nothing(world: World, case: str) -> None:
    fields, reason = RECONNECT_REFUSALS[case]
    client, csrf = world.browser("owner")
    before = snapshot(world)
    page = post_and_follow(client, f"{PAGE}/{world.a_street}/reconnect", {"csrf_token": csrf, **fields})
    card = card_html(page, world.a_street)
    assert "Not reconnected, nothing was changed" in card and reason in card
    assert snapshot(world) == before


def test_reconnect_settings_and_a_mixed_credential_set(world: World) -> None:
    """agentOS takes a short name and a key; Open API a base URL and a token, or a client id and secret."""
    with db.engine(world.db_url).begin() as conn:
        org = conn.execute(select(integrations.c.org_id).where(integrations.c.id == world.a_street)).scalar_one()
    from nurturehub_pipelines.store import accounts

    with db.engine(world.db_url).begin() as conn:
        agentos = accounts.add_integration(conn, org, "agentos", "agentOS", {"short_name": "old"}, {"api_key": "k-old"})
        openapi = accounts.add_integration(
            conn, org, "openapi", "Open API", {"base_url": "https://api.old.example"}, {"token": "t-old"}
        )
    client, csrf = world.browser("owner")
    page = client.get(PAGE).text
    agentos_card, openapi_card = card_html(page, agentos), card_html(page, openapi)
    assert 'name="setting.short_name" type="text" value="old"' in agentos_card
    assert 'name="credential.api_key" type="password"' in agentos_card and "k-old" not in agentos_card
    for name in ("token", "client_id", "client_secret"):
        assert f'name="credential.{name}" type="password"' in openapi_card
    assert "t-old" not in openapi_card

    page = post_and_follow(client, f"{PAGE}/{agentos}/reconnect", {"csrf_token": csrf, "setting.short_name": "new"})
    assert "Reconnected — syncing now." in card_html(page, agentos)
    assert (stored(world, agentos)["settings"], stored(world, agentos)["credentials"]) == (
        {"short_name": "new"},
        {"api_key": "k-old"},
    )
    before = snapshot(world)
    form = {"csrf_token": csrf, "setting.base_url": "https://api.new.example", "credential.token": "t-new"}
    page = post_and_follow(client, f"{PAGE}/{openapi}/reconnect", {**form, "credential.client_id": "c-new"})
    card = card_html(page, openapi)
    assert (
        "Not reconnected, nothing was changed" in card
        and "openapi takes credentials: token or client_id and client_secret" in card
    )
    assert "t-new" not in card and "c-new" not in card
    assert snapshot(world) == before
    page = post_and_follow(
        client, f"{PAGE}/{openapi}/reconnect", {**form, "credential.token": "", "credential.client_id": "c-new",
                                                 "credential.client_secret": "s-new"}
    )  # fmt: skip
    assert "Reconnected — syncing now." in card_html(page, openapi)
    assert stored(world, openapi)["credentials"] == {"client_id": "c-new", "client_secret": "s-new"}
    assert stored(world, openapi)["settings"] == {"base_url": "https://api.new.example"}


FORMS = ("pause", "resume", "reconnect")


@pytest.mark.parametrize("form", FORMS)
def test_the_forms_follow_the_access_rules_and_need_their_csrf_token(world: World, form: str) -> None:
    before = snapshot(world)
    data = {"credential.api_token": NEW_TOKEN}
    anonymous = world.client().post(f"{PAGE}/{world.a_street}/{form}", data=data)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    member, member_csrf = world.browser("member")
    assert member.post(f"{PAGE}/{world.a_street}/{form}", data={**data, "csrf_token": member_csrf}).status_code == 403
    bearer_member = world.client("member").post(f"{PAGE}/{world.a_street}/{form}", data=data)
    assert bearer_member.status_code == 403
    owner, csrf = world.browser("owner")
    _admin, admin_csrf = world.browser("admin")
    for token in ("", "wrong", admin_csrf):
        refused = owner.post(f"{PAGE}/{world.a_street}/{form}", data={**data, "csrf_token": token})
        assert refused.status_code == 403 and NEW_TOKEN not in refused.text
    assert owner.post(f"{PAGE}/{world.b_reapit}/{form}", data={**data, "csrf_token": csrf}).status_code == 404
    assert owner.post(f"{PAGE}/999999/{form}", data={**data, "csrf_token": csrf}).status_code == 404
    assert snapshot(world) == before
    if form == "reconnect":  # Reapit signs in with NurtureHub's own credentials
        assert owner.post(f"{PAGE}/{world.a_reapit}/reconnect", data={**data, "csrf_token": csrf}).status_code == 404
        assert snapshot(world) == before


@pytest.mark.parametrize("form", FORMS)
def test_no_body_is_read_before_authentication(world: World, form: str) -> None:
    path = f"{PAGE}/{world.a_street}/{form}"
    malformed = {"content-type": "multipart/form-data; boundary=x"}
    for client in (world.client(), world.client("member")):
        for body, headers in ((b"--x\r\nbroken", malformed), (b"%zz=%%&&" * 1000, {})):
            answer = client.post(path, content=body, headers=headers)
            assert answer.status_code in (303, 403), answer.status_code
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/signin")
    owner, csrf = world.browser("owner")
    assert (
        owner.post(
            path, content=b"x" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"}
        ).status_code
        == 413
    )
    multipart = owner.post(path, files={"csrf_token": (None, csrf), "credential.api_token": (None, NEW_TOKEN)})
    assert multipart.status_code == 303  # a hand-made multipart post works like the page's urlencoded one


def test_the_page_forms_need_no_script(world: World) -> None:
    """Every action is a real <form method="post"> with its CSRF field; no inline script, no JS-only button."""
    client, csrf = world.browser("owner")
    page = client.get(PAGE).text
    street = card_html(page, world.a_street)
    forms = re.findall(r"<form ([^>]*)>(.*?)</form>", street, re.S)
    actions = {re.search(r'action="([^"]+)"', attrs).group(1) for attrs, _ in forms}  # type: ignore[union-attr]
    assert {f"{PAGE}/{world.a_street}/{name}" for name in ("sync", "pause", "reconnect")} <= actions
    for attrs, inner in forms:
        assert 'method="post"' in attrs
        assert f'name="csrf_token" value="{csrf}"' in inner and 'type="submit"' in inner
    assert '<details class="reconnect"' in street and "onclick" not in page and "<script>" not in page
