"""The access matrix: anonymous / member / admin / owner x own / other organisation x every route.

DESIGN.md fixes the order: no valid credentials 401, a member 403 (whatever the organisation), another
organisation's integration 404. The HTML page sends the anonymous to the sign-in form (303) instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import sync_requests

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

CALLERS = ("anonymous", "wrong_token", "member", "admin", "owner")


def call(world: World, who: str, method: str, path: str) -> int:
    if who == "wrong_token":
        client = world.client()
        client.headers["Authorization"] = "Bearer nh_not-a-real-token"
    else:
        client = world.client(None if who == "anonymous" else who)
    answer = client.request(method, path)
    if answer.status_code in (202, 409):  # let the next caller's Sync Now start from a clean slate
        with db.engine(world.db_url).begin() as conn:
            conn.execute(update(sync_requests).values(status="finished"))
    if answer.status_code == 401:
        assert answer.headers["www-authenticate"].lower().startswith("bearer")
    if path.startswith("/api/"):
        assert answer.headers["content-type"].startswith("application/json"), (path, answer.text)
    return answer.status_code


def expected(who: str, own: bool, ok: int) -> int:
    if who in ("anonymous", "wrong_token"):
        return 401
    if who == "member":
        return 403
    return ok if own else 404


def own_error(world: World) -> int:
    return world.log(world.a_reapit, "sync_finished", "error", "Reapit rejected the credentials", run_id="a-run")


ROUTES = {
    "log": ("GET", "/api/integrations/{id}/log", 200),
    "log_bad_limit": ("GET", "/api/integrations/{id}/log?limit=0", 422),
    "sync": ("POST", "/api/integrations/{id}/sync", 202),
    "retry": ("POST", "/api/integrations/{id}/errors/{log_id}/retry", 202),
}


@pytest.mark.parametrize("route", ROUTES)
def test_integration_routes_answer_401_then_403_then_404(world: World, route: str) -> None:
    method, template, ok = ROUTES[route]
    own_log_id = own_error(world)
    wrong = []
    for who in CALLERS:
        for own in (True, False):
            integration_id, log_id = (world.a_reapit, own_log_id) if own else (world.b_reapit, world.b_error_id)
            path = template.format(id=integration_id, log_id=log_id)
            got, want = call(world, who, method, path), expected(who, own, ok)
            if got != want:
                wrong.append(f"{who} {method} {path}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_list_shows_only_the_callers_organisation(world: World) -> None:
    wrong = []
    for who in CALLERS:
        got, want = call(world, who, "GET", "/api/integrations"), expected(who, True, 200)
        if got != want:
            wrong.append(f"{who}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
    ids = {card["id"] for card in world.client("admin").get("/api/integrations").json()["integrations"]}
    assert ids == {world.a_reapit, world.a_street}
    other = world.client("other_owner").get("/api/integrations").json()["integrations"]
    assert [card["id"] for card in other] == [world.b_reapit]


def test_unknown_or_malformed_ids_are_404_after_the_access_checks(world: World) -> None:
    for path in ("/api/integrations/999999/log", "/api/integrations/abc/log", "/api/integrations/1.5/log"):
        assert call(world, "anonymous", "GET", path) == 401
        assert call(world, "member", "GET", path) == 403
        assert call(world, "owner", "GET", path) == 404
    assert call(world, "owner", "POST", f"/api/integrations/{world.a_reapit}/errors/xyz/retry") == 404


def test_page_sends_the_anonymous_to_sign_in_and_refuses_members(world: World) -> None:
    answer = world.client().get("/dashboard/settings/integrations")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin")
    assert world.client("member").get("/dashboard/settings/integrations").status_code == 403
    for who in ("admin", "owner"):
        page = world.client(who).get("/dashboard/settings/integrations")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    member, _csrf = world.browser("member")
    assert member.get("/dashboard/settings/integrations").status_code == 403
    assert member.get("/api/integrations").status_code == 403
