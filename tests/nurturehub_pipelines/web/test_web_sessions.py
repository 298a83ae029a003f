"""Sessions end server-side (DESIGN.md, Running an integration → Sessions).

A browser session is a `web_sessions` row: signing out, rotating a token (a new `token_hash` and
`end_sessions`, as the CLI does) or removing a user refuses the saved cookie at once, like no cookie:
303 to sign-in on the page, 401 on the JSON routes, and no POST goes through with it.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import delete, func, select, update

from nurturehub_pipelines.store import db, sessions
from nurturehub_pipelines.store.secrets import hash_token, new_token
from nurturehub_pipelines.store.tables import sync_requests, users, utcnow, web_sessions

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

PAGE = "/dashboard/settings/integrations"
COOKIE = "nurturehub_session"


def saved_cookie(client: httpx.Client) -> str:
    value = client.cookies.get(COOKIE)
    assert value, "no session cookie"
    return value


def replay(world: World, cookie: str) -> httpx.Client:
    """A fresh client that sends only the saved cookie, as someone who copied it would."""
    client = world.client()
    client.cookies.set(COOKIE, cookie)
    return client


def assert_refused(world: World, cookie: str, csrf: str) -> None:
    """The saved cookie is treated like no cookie on the page, the JSON routes and a POST."""
    client = replay(world, cookie)
    page = client.get(PAGE)
    assert page.status_code == 303 and page.headers["location"].startswith("/signin"), page.status_code
    assert client.get("/api/integrations").status_code == 401
    post = client.post(f"/api/integrations/{world.a_reapit}/sync", headers={"X-CSRF-Token": csrf})
    assert post.status_code == 401
    form = client.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf})
    assert form.status_code == 303 and form.headers["location"].startswith("/signin")
    with db.engine(world.db_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(sync_requests)).scalar_one() == 0


def assert_accepted(world: World, cookie: str) -> None:
    client = replay(world, cookie)
    assert client.get(PAGE).status_code == 200
    assert client.get("/api/integrations").status_code == 200


def user_id(world: World, who: str) -> int:
    with db.engine(world.db_url).connect() as conn:
        return conn.execute(select(users.c.id).where(users.c.email == world.emails[who])).scalar_one()


def session_rows(world: World, who: str) -> int:
    with db.engine(world.db_url).connect() as conn:
        query = select(func.count()).select_from(web_sessions).where(web_sessions.c.user_id == user_id(world, who))
        return conn.execute(query).scalar_one()


def test_sign_out_refuses_the_saved_cookie_at_once(world: World) -> None:
    browser, csrf = world.browser("owner")
    cookie = saved_cookie(browser)
    assert_accepted(world, cookie)  # the copy works while the session lives
    assert session_rows(world, "owner") == 1
    out = browser.post("/signout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert session_rows(world, "owner") == 0
    assert_refused(world, cookie, csrf)


def test_sign_out_ends_only_that_browsers_session(world: World) -> None:
    laptop, laptop_csrf = world.browser("owner")
    phone, _phone_csrf = world.browser("owner")
    assert session_rows(world, "owner") == 2
    laptop_cookie = saved_cookie(laptop)
    assert laptop.post("/signout", data={"csrf_token": laptop_csrf}).status_code == 303
    assert phone.get(PAGE).status_code == 200
    assert_refused(world, laptop_cookie, laptop_csrf)


def test_signing_in_again_replaces_the_browsers_session(world: World) -> None:
    browser, _csrf = world.browser("owner")
    first = saved_cookie(browser)
    assert browser.post("/signin", data={"token": world.tokens["admin"]}).status_code == 303
    assert session_rows(world, "owner") == 0 and session_rows(world, "admin") == 1
    assert_refused(world, first, _csrf)


def test_rotating_a_token_refuses_sessions_opened_with_the_old_one(world: World) -> None:
    browser, csrf = world.browser("admin")
    cookie = saved_cookie(browser)
    fresh = new_token()
    with db.engine(world.db_url).begin() as conn:  # what `nurturehub token rotate` does
        admin_id = conn.execute(select(users.c.id).where(users.c.email == world.emails["admin"])).scalar_one()
        conn.execute(update(users).where(users.c.id == admin_id).values(token_hash=hash_token(fresh)))
        assert sessions.end_sessions(conn, admin_id) == 1
    assert_refused(world, cookie, csrf)
    assert browser.get(PAGE).status_code == 303
    again = world.client()
    assert again.post("/signin", data={"token": world.tokens["admin"]}).status_code == 401
    assert again.post("/signin", data={"token": fresh}).status_code == 303
    assert again.get(PAGE).status_code == 200


def test_ended_sessions_are_refused_whatever_the_token(world: World) -> None:
    """end_sessions alone refuses the cookie: the identity comes from the row, not from the cookie."""
    browser, csrf = world.browser("owner")
    other, _ = world.browser("other_owner")
    cookie = saved_cookie(browser)
    with db.engine(world.db_url).begin() as conn:
        assert sessions.end_sessions(conn, user_id(world, "owner")) == 1
    assert_refused(world, cookie, csrf)
    assert other.get(PAGE).status_code == 200  # another user's session is untouched


def test_removing_a_user_refuses_their_cookie(world: World) -> None:
    browser, csrf = world.browser("admin")
    cookie = saved_cookie(browser)
    with db.engine(world.db_url).begin() as conn:  # what `nurturehub user remove` does
        admin_id = conn.execute(select(users.c.id).where(users.c.email == world.emails["admin"])).scalar_one()
        sessions.end_sessions(conn, admin_id)
        conn.execute(delete(users).where(users.c.id == admin_id))
    assert_refused(world, cookie, csrf)


def test_a_user_row_gone_refuses_the_cookie_even_if_its_session_row_stayed(world: World) -> None:
    """Another writer deleting the user without end_sessions: the row cascades, and the user lookup refuses."""
    browser, csrf = world.browser("admin")
    cookie = saved_cookie(browser)
    with db.engine(world.db_url).begin() as conn:
        conn.execute(delete(users).where(users.c.email == world.emails["admin"]))
        assert conn.execute(select(func.count()).select_from(web_sessions)).scalar_one() == 0  # ON DELETE CASCADE
    assert_refused(world, cookie, csrf)


def test_a_session_expires_twelve_hours_after_sign_in(world: World) -> None:
    browser, csrf = world.browser("owner")
    cookie = saved_cookie(browser)
    with db.engine(world.db_url).connect() as conn:
        row = conn.execute(select(web_sessions.c.created_at, web_sessions.c.expires_at)).one()
    assert row.expires_at - row.created_at == timedelta(hours=12)
    assert abs(row.created_at - utcnow()) < timedelta(minutes=5)
    with db.engine(world.db_url).begin() as conn:
        conn.execute(update(web_sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_refused(world, cookie, csrf)


def test_the_cookie_carries_a_session_key_not_an_identity(world: World) -> None:
    browser, _csrf = world.browser("owner")
    payload = saved_cookie(browser).split(".")[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(data) == {"sid", "fp", "csrf"}  # no user id: who signed in is the web_sessions row's to say
    with db.engine(world.db_url).connect() as conn:
        stored = conn.execute(select(web_sessions.c.id)).scalar_one()
    assert data["sid"] not in stored  # only a hash of the key is stored
