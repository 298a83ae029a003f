"""The JSON API over real HTTP: cards, /log limits, Sync Now and Retry (202/409/429), CSRF, secrets, OpenAPI."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from crm_resources.core.london import london_time
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, sync_requests, utcnow

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

CARD_FIELDS = {
    "id", "crm", "crm_name", "name", "enabled", "paused_reason", "last_synced_at", "health", "health_reason",
    "consecutive_failures", "sync_in_progress", "next_sync_at", "recent_errors",
}  # fmt: skip


def requested_rows(world: World, integration_id: int) -> list[tuple[str, str, str]]:
    with db.engine(world.db_url).connect() as conn:
        rows = conn.execute(
            select(crm_sync_log.c.outcome, crm_sync_log.c.trigger, crm_sync_log.c.message)
            .where(crm_sync_log.c.integration_id == integration_id, crm_sync_log.c.event_type == "sync_requested")
            .order_by(crm_sync_log.c.id)
        ).all()
    return [tuple(row) for row in rows]


def request_rows(world: World) -> list[tuple[str, str, str]]:
    with db.engine(world.db_url).connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(sync_requests.c.id, sync_requests.c.trigger, sync_requests.c.status))
        ]


def test_cards_have_exactly_the_contract_fields(world: World) -> None:
    now = utcnow()
    world.finished_run(world.a_reapit, "success", now - timedelta(hours=1))
    world.finished_run(world.a_street, "error", now - timedelta(minutes=5), "Street rejected the API token")
    cards = {c["id"]: c for c in world.client("owner").get("/api/integrations").json()["integrations"]}
    assert all(set(card) == CARD_FIELDS for card in cards.values())
    reapit, street = cards[world.a_reapit], cards[world.a_street]
    assert (reapit["crm_name"], reapit["name"], reapit["health"]) == ("Reapit", "Reapit", "green")
    assert (street["crm_name"], street["name"], street["health"]) == ("Street", "Street lettings", "red")
    assert street["health_reason"] == "Street rejected the API token"
    assert street["consecutive_failures"] == 1 and street["last_synced_at"] is None
    assert [set(e) for e in street["recent_errors"]] == [{"log_id", "occurred_at", "event_type", "message"}]


def test_log_limit_defaults_clamps_and_refuses(world: World) -> None:
    start = utcnow() - timedelta(hours=3)
    for n in range(130):
        world.log(world.a_reapit, "contact_import", "success", f"page {n}", records_affected=n,
                  occurred_at=start + timedelta(seconds=n))  # fmt: skip
    client = world.client("admin")
    path = f"/api/integrations/{world.a_reapit}/log"
    events = client.get(path).json()["events"]
    assert len(events) == 100 and events[0]["records_affected"] == 129 and events[-1]["records_affected"] == 30
    assert set(events[0]) == {
        "id", "occurred_at", "event_type", "records_affected", "records_skipped", "outcome", "message", "run_id",
        "trigger",
    }  # fmt: skip
    assert [e["records_affected"] for e in client.get(path, params={"limit": 3}).json()["events"]] == [129, 128, 127]
    assert len(client.get(path, params={"limit": 1000}).json()["events"]) == 100
    assert len(client.get(path, params={"limit": 100}).json()["events"]) == 100
    for bad in ("0", "-1", "abc", "1.5", "", "1e2"):
        answer = client.get(path, params={"limit": bad})
        assert answer.status_code == 422, bad
        assert "detail" in answer.json()


def test_sync_now_is_accepted_logged_and_then_409_while_in_progress(world: World) -> None:
    client = world.client("admin")
    answer = client.post(f"/api/integrations/{world.a_reapit}/sync")
    assert answer.status_code == 202
    request_id = answer.json()["request_id"]
    assert isinstance(request_id, str) and request_id and set(answer.json()) == {"request_id"}
    assert request_rows(world) == [(request_id, "sync_now", "pending")]
    assert requested_rows(world, world.a_reapit) == [
        ("success", "sync_now", "Sync Now requested by admin@harbour.example")
    ]
    card = next(c for c in client.get("/api/integrations").json()["integrations"] if c["id"] == world.a_reapit)
    assert card["sync_in_progress"] is True and card["health"] == "pending"

    again = world.client("owner").post(f"/api/integrations/{world.a_reapit}/sync")
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert len(requested_rows(world, world.a_reapit)) == 1  # a 409 is not a new request
    assert world.client("owner").post(f"/api/integrations/{world.a_street}/sync").status_code == 202


def test_when_the_run_finishes_a_new_sync_can_be_requested(world: World) -> None:
    client = world.client("owner")
    assert client.post(f"/api/integrations/{world.a_reapit}/sync").status_code == 202
    with db.engine(world.db_url).begin() as conn:
        conn.execute(update(sync_requests).values(status="launched", launched_at=utcnow(), run_id="run-x"))
    assert client.post(f"/api/integrations/{world.a_reapit}/sync").status_code == 409
    world.finished_run(world.a_reapit, "success", utcnow(), run_id="run-x")
    assert client.post(f"/api/integrations/{world.a_reapit}/sync").status_code == 202


def test_a_running_scheduled_sync_is_409_too(world: World) -> None:
    world.log(world.a_reapit, "auth_refresh", "success", "token refreshed", run_id="scheduled-run")
    assert world.client("owner").post(f"/api/integrations/{world.a_reapit}/sync").status_code == 409


def test_concurrent_clicks_give_one_202_and_the_rest_409(world: World) -> None:
    clients = [world.client("owner") for _ in range(8)]
    barrier, answers = threading.Barrier(len(clients)), []

    def click(client: object) -> None:
        barrier.wait()
        answers.append(client.post(f"/api/integrations/{world.a_reapit}/sync").status_code)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [202] + [409] * 7
    assert len(request_rows(world)) == 1
    assert [r[0] for r in requested_rows(world, world.a_reapit)] == ["success"]


def test_a_closed_rate_limit_window_is_429_with_retry_after_and_logged(world: World) -> None:
    until = utcnow() + timedelta(minutes=10)
    with db.engine(world.db_url).begin() as conn:
        conn.execute(update(integrations).where(integrations.c.id == world.a_reapit).values(rate_limited_until=until))
    answer = world.client("owner").post(f"/api/integrations/{world.a_reapit}/sync")
    assert answer.status_code == 429
    assert 590 <= int(answer.headers["retry-after"]) <= 600
    message = f"Sync Now refused: Reapit rate limit, next attempt at {london_time(until, utcnow())}"
    assert answer.json()["detail"] == message
    assert requested_rows(world, world.a_reapit) == [("error", "sync_now", message)]
    assert request_rows(world) == []  # a refused request is not a request
    card = next(
        c for c in world.client("owner").get("/api/integrations").json()["integrations"] if c["id"] == world.a_reapit
    )
    assert card["recent_errors"][0]["message"] == message and card["recent_errors"][0]["event_type"] == "sync_requested"
    assert card["consecutive_failures"] == 0 and card["sync_in_progress"] is False
    with db.engine(world.db_url).begin() as conn:
        conn.execute(
            update(integrations).values(rate_limited_until=utcnow() - timedelta(seconds=1))
        )  # the window has opened
    assert world.client("owner").post(f"/api/integrations/{world.a_reapit}/sync").status_code == 202


def test_retry_of_an_error_row_requests_a_retry_sync(world: World) -> None:
    error_id = world.finished_run(world.a_reapit, "error", utcnow(), "Reapit is unavailable (HTTP 503)")
    answer = world.client("owner").post(f"/api/integrations/{world.a_reapit}/errors/{error_id}/retry")
    assert answer.status_code == 202 and set(answer.json()) == {"request_id"}
    assert requested_rows(world, world.a_reapit) == [("success", "retry", "Retry requested by owner@harbour.example")]
    assert [row[1:] for row in request_rows(world)] == [("retry", "pending")]
    assert world.client("admin").post(f"/api/integrations/{world.a_reapit}/errors/{error_id}/retry").status_code == 409


def test_retry_of_anything_but_an_error_row_of_that_integration_is_404(world: World) -> None:
    ok_id = world.finished_run(world.a_reapit, "success", utcnow())
    street_error = world.log(world.a_street, "sync_finished", "error", "Street is down")
    client = world.client("owner")
    for path in (
        f"/api/integrations/{world.a_reapit}/errors/{ok_id}/retry",  # not an error
        f"/api/integrations/{world.a_reapit}/errors/{street_error}/retry",  # another integration's
        f"/api/integrations/{world.a_reapit}/errors/{world.b_error_id}/retry",  # another organisation's
        f"/api/integrations/{world.a_reapit}/errors/987654/retry",  # none
    ):
        assert client.post(path).status_code == 404, path
    assert request_rows(world) == []


@pytest.mark.parametrize("how", ["none", "wrong", "other_session"])
def test_cookie_posts_without_their_csrf_token_are_refused(world: World, how: str) -> None:
    browser, csrf = world.browser("owner")
    _other, other_csrf = world.browser("admin")
    token = {"none": None, "wrong": "nope", "other_session": other_csrf}[how]
    headers = {"X-CSRF-Token": token} if token else {}
    answer = browser.post(f"/api/integrations/{world.a_reapit}/sync", headers=headers)
    assert answer.status_code == 403
    form = browser.post(f"/dashboard/settings/integrations/{world.a_reapit}/sync", data={"csrf_token": token or ""})
    assert form.status_code == 403
    assert request_rows(world) == []
    assert csrf and csrf != other_csrf


def test_cookie_posts_with_their_csrf_token_work(world: World) -> None:
    browser, csrf = world.browser("admin")
    answer = browser.post(f"/api/integrations/{world.a_reapit}/sync", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 202
    form = browser.post(f"/api/integrations/{world.a_street}/sync", data={"csrf_token": csrf})
    assert form.status_code == 202


def test_no_secret_in_any_answer(world: World) -> None:
    error_id = world.finished_run(world.a_street, "error", utcnow(), "Street rejected the API token")
    with db.engine(world.db_url).connect() as conn:
        ciphertext = conn.execute(
            select(integrations.c.credentials_encrypted).where(integrations.c.id == world.a_street)
        ).scalar_one()
    browser, csrf = world.browser("owner")
    bearer = world.client("owner")
    answers = [
        bearer.get("/api/integrations"),
        bearer.get(f"/api/integrations/{world.a_street}/log"),
        bearer.post(f"/api/integrations/{world.a_street}/errors/{error_id}/retry"),
        bearer.post(f"/api/integrations/{world.a_street}/sync"),
        bearer.get("/api/openapi.json"),
        bearer.get("/dashboard/settings/integrations"),
        browser.get("/dashboard/settings/integrations"),
        browser.get("/dashboard/settings/integrations/cards"),
        world.client().get("/signin"),
    ]
    secrets = [world.secret, ciphertext[:40], *world.tokens.values()]
    for answer in answers:
        dump = str(answer.headers) + answer.text
        for secret in secrets:
            assert secret not in dump, (answer.url, secret)
    assert "api_token" not in answers[0].text and "credentials" not in answers[0].text


def test_openapi_describes_the_json_routes(world: World) -> None:
    answer = world.client("admin").get("/api/openapi.json")  # behind credentials like every route
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/api/integrations",
        "/api/integrations/{id}",
        "/api/integrations/{id}/log",
        "/api/integrations/{id}/sync",
        "/api/integrations/{id}/errors/{log_id}/retry",
    }
    sync = doc["paths"]["/api/integrations/{id}/sync"]["post"]["responses"]
    assert {"202", "401", "403", "404", "409", "429"} <= set(sync)
    assert "Retry-After" in sync["429"]["headers"]
    assert set(doc["components"]["schemas"]["Card"]["required"]) == CARD_FIELDS
    assert "422" in doc["paths"]["/api/integrations/{id}/log"]["get"]["responses"]
