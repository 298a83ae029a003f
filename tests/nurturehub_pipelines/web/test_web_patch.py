"""PATCH /api/integrations/{id} over real HTTP: access order, CSRF, the body read only after auth, the
whole change or nothing (422 naming the field, rows compared), and no credential ever echoed or logged."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import pytest

from nurturehub_pipelines.store import db, integration_changes
from nurturehub_pipelines.store.tables import utcnow
from tests.support import integration_rows as rows

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import World

CALLERS = ("anonymous", "wrong_token", "member", "admin", "owner")
NEW_TOKEN = "street-token-NEW-also-secret-4711"


def snapshot(world: World) -> dict[str, Any]:
    return rows.snapshot(world.db_url)


def stored(world: World, integration_id: int) -> dict[str, Any]:
    return rows.stored(world.db_url, integration_id)


def patch(world: World, who: str, integration_id: int, body: Any) -> Any:
    if who == "wrong_token":
        client = world.client()
        client.headers["Authorization"] = "Bearer nh_not-a-real-token"
    else:
        client = world.client(None if who == "anonymous" else who)
    return client.patch(f"/api/integrations/{integration_id}", json=body)


def test_patch_answers_401_then_403_then_404_and_only_owners_and_admins_change(world: World) -> None:
    wrong = []
    for who in CALLERS:
        for own in (True, False):
            integration_id = world.a_reapit if own else world.b_reapit
            before = snapshot(world)
            answer = patch(world, who, integration_id, {"name": f"Renamed by {who}"})
            want = 401 if who in ("anonymous", "wrong_token") else 403 if who == "member" else 200 if own else 404
            if answer.status_code != want:
                wrong.append(f"{who} own={own}: {answer.status_code}, expected {want}")
            assert answer.headers["content-type"].startswith("application/json")
            if want != 200 and snapshot(world) != before:
                wrong.append(f"{who} own={own}: a refused PATCH wrote rows")
            if want == 401:
                assert answer.headers["www-authenticate"].lower().startswith("bearer")
    assert not wrong, "\n".join(wrong)
    assert stored(world, world.a_reapit)["name"] == "Renamed by owner"
    assert stored(world, world.b_reapit)["name"] == "Reapit"
    for path in ("/api/integrations/999999", "/api/integrations/abc", "/api/integrations/0"):
        assert world.client().patch(path, json={}).status_code == 401
        assert world.client("member").patch(path, json={}).status_code == 403
        assert world.client("owner").patch(path, json={}).status_code == 404


def test_pause_and_resume_say_who_paused_it_and_drop_the_next_sync(world: World) -> None:
    answer = patch(world, "admin", world.a_street, {"enabled": False})
    assert answer.status_code == 200
    card = answer.json()
    assert card["id"] == world.a_street and card["name"] == "Street lettings"
    assert (card["enabled"], card["paused_reason"], card["next_sync_at"]) == (
        False,
        "Paused by admin@harbour.example",
        None,
    )
    listed = {c["id"]: c for c in world.client("owner").get("/api/integrations").json()["integrations"]}
    assert listed[world.a_street] == card
    assert listed[world.a_reapit]["enabled"] is True and listed[world.a_reapit]["paused_reason"] is None
    again = patch(world, "owner", world.a_street, {"enabled": False}).json()  # already paused: still admin's
    assert again["paused_reason"] == "Paused by admin@harbour.example"
    resumed = patch(world, "owner", world.a_street, {"enabled": True}).json()
    assert (resumed["enabled"], resumed["paused_reason"]) == (True, None)
    assert resumed["next_sync_at"] is not None
    row = stored(world, world.a_street)
    assert (row["enabled"], row["paused_by"], row["paused_at"]) == (True, None, None)


def test_settings_merge_and_credentials_replace_the_whole_set(world: World) -> None:
    answer = patch(world, "owner", world.a_reapit, {"settings": {"customer_id": "NEW"}, "name": "Head office"})
    assert answer.status_code == 200 and answer.json()["name"] == "Head office"
    assert stored(world, world.a_reapit)["settings"] == {"customer_id": "NEW"}
    answer = patch(world, "owner", world.a_street, {"credentials": {"api_token": NEW_TOKEN}})
    assert answer.status_code == 200
    assert stored(world, world.a_street)["credentials"] == {"api_token": NEW_TOKEN}
    assert NEW_TOKEN not in answer.text and world.secret not in answer.text
    assert "api_token" not in answer.text and "credentials" not in answer.text
    assert patch(world, "owner", world.a_reapit, {}).status_code == 200  # nothing asked, nothing changed


def test_new_credentials_lift_the_rejected_credentials_hold(world: World) -> None:
    with db.engine(world.db_url).begin() as conn:
        integration_changes.quarantine(conn, world.a_street, "street", utcnow())
    card = next(
        c for c in world.client("owner").get("/api/integrations").json()["integrations"] if c["id"] == world.a_street
    )
    reason = "Waiting for new Street credentials: Street rejected the last ones"
    assert (card["enabled"], card["paused_reason"], card["next_sync_at"]) == (True, reason, None)
    renamed = patch(world, "owner", world.a_street, {"name": "Still held"}).json()
    assert renamed["paused_reason"] == reason  # a new name is not a reconnect
    card = patch(world, "owner", world.a_street, {"credentials": {"api_token": NEW_TOKEN}}).json()
    assert (card["paused_reason"], card["next_sync_at"] is not None) == (None, True)
    assert stored(world, world.a_street)["quarantined_at"] is None


BAD_BODIES: dict[str, tuple[int, str, Any]] = {
    # case: (which integration: 0 Reapit, 1 Street), the field the 422 must name, the body
    "unknown field": (1, "colour", {"colour": "red", "name": "Fine name"}),
    "name not a string": (0, "name", {"name": 42}),
    "name null": (0, "name", {"name": None}),
    "name empty": (0, "name", {"name": "  "}),
    "name with a line break": (0, "name", {"name": "Evil\r\nBcc: x@y.example"}),
    "name too long": (0, "name", {"name": "x" * 101}),
    "enabled not a boolean": (0, "enabled", {"enabled": "false"}),
    "enabled a number": (0, "enabled", {"enabled": 0}),
    "settings not an object": (0, "settings", {"settings": "customer_id=X"}),
    "setting not a string": (0, "settings", {"settings": {"customer_id": 7}}),
    "unknown setting": (0, "settings", {"settings": {"branch": "X"}}),
    "empty setting": (0, "settings", {"settings": {"customer_id": ""}}),
    "credentials not an object": (1, "credentials", {"credentials": ["api_token"]}),
    "credential not a string": (1, "credentials", {"credentials": {"api_token": 12345}}),
    "credential set incomplete": (1, "credentials", {"credentials": {}}),
    "credential set wrong": (1, "credentials", {"credentials": {"api_key": NEW_TOKEN}}),
    "credential empty": (1, "credentials", {"credentials": {"api_token": ""}}),
    "good fields beside a bad one": (1, "credentials", {"enabled": False, "name": "X", "credentials": {"x": "y"}}),
    "credentials for reapit": (0, "credentials", {"credentials": {"api_token": NEW_TOKEN}}),
    "not an object": (0, "body", ["name", "X"]),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_body_is_422_naming_the_field_and_writes_nothing(world: World, case: str) -> None:
    which, field, body = BAD_BODIES[case]
    integration_id = (world.a_reapit, world.a_street)[which]
    before = snapshot(world)
    answer = patch(world, "owner", integration_id, body)
    assert answer.status_code == 422, answer.text
    refusal = answer.json()
    assert refusal["field"] == field and field in refusal["detail"], refusal
    assert field in {e["field"] for e in refusal["errors"]}
    assert NEW_TOKEN not in answer.text and world.secret not in answer.text
    assert snapshot(world) == before


def test_bodies_that_are_not_json_are_422_and_large_ones_413(world: World) -> None:
    client = world.client("owner")
    path = f"/api/integrations/{world.a_street}"
    before = snapshot(world)
    for raw in (b"", b"{", b"name=x", '{"name": "\xe9"'.encode("latin-1"), b"[" * 5000 + b"]" * 5000):
        answer = client.patch(path, content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 422 and answer.json()["field"] == "body", raw[:20]
    huge = json.dumps({"name": "x", "settings": {"k": "v" * 70_000}})
    assert client.patch(path, content=huge, headers={"content-type": "application/json"}).status_code == 413

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    assert client.patch(path, content=chunks()).status_code == 413  # chunked: no Content-Length to go by
    assert snapshot(world) == before


def raw_patch(world: World, path: str, headers: dict[str, str], body: bytes, send_body: bool) -> int:
    """A PATCH over a raw socket: announce `body` and send it only if `send_body`; the status it gets."""
    host, port = world.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + (body if send_body else b""))
        status = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status.split()[1])


def test_credentials_are_checked_before_the_body_is_read(world: World) -> None:
    path = f"/api/integrations/{world.a_street}"
    # A body announced but never sent: an answer at all means the server did not wait to read it.
    assert raw_patch(world, path, {}, b"x" * 40_000_000, send_body=False) == 401
    member = {"Authorization": f"Bearer {world.tokens['member']}"}
    assert raw_patch(world, path, member, b"x" * 40_000_000, send_body=False) == 403
    for body in (b"not json at all", b'{"credentials": 5}', b"\xff\xfe"):
        assert world.client().patch(path, content=body).status_code == 401
        assert world.client("member").patch(path, content=body).status_code == 403
    assert world.client("owner").patch(f"/api/integrations/{world.b_reapit}", content=b"{").status_code == 404


@pytest.mark.parametrize("how", ["none", "wrong", "other_session"])
def test_cookie_patch_needs_its_csrf_token(world: World, how: str) -> None:
    browser, csrf = world.browser("owner")
    _other, other_csrf = world.browser("admin")
    token = {"none": None, "wrong": "nope", "other_session": other_csrf}[how]
    headers = {"X-CSRF-Token": token} if token else {}
    before = snapshot(world)
    answer = browser.patch(f"/api/integrations/{world.a_street}", json={"enabled": False}, headers=headers)
    assert answer.status_code == 403
    assert snapshot(world) == before
    ok = browser.patch(f"/api/integrations/{world.a_street}", json={"enabled": False}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["paused_reason"] == "Paused by owner@harbour.example"
    bearer = world.client("admin").patch(f"/api/integrations/{world.a_street}", json={"enabled": True})
    assert bearer.status_code == 200  # a bearer token needs no CSRF token


def test_no_credential_is_echoed_or_logged(
    world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    client = world.client("owner")
    path = f"/api/integrations/{world.a_street}"
    answers = [
        client.patch(path, json={"credentials": {"api_token": NEW_TOKEN}}),
        client.patch(path, json={"credentials": {"api_token": NEW_TOKEN, "extra": NEW_TOKEN}}),
        client.patch(path, json={"credentials": {"api_token": NEW_TOKEN}, "name": NEW_TOKEN + "\n"}),
        client.patch(path, json={NEW_TOKEN: NEW_TOKEN}),
        client.get("/api/integrations"),
        client.get("/dashboard/settings/integrations"),
    ]
    assert [a.status_code for a in answers] == [200, 422, 422, 422, 200, 200]
    out, err = capfd.readouterr()
    for text in [*(str(a.headers) + a.text for a in answers), caplog.text, out, err]:
        assert NEW_TOKEN not in text and world.secret not in text
    assert stored(world, world.a_street)["credentials"] == {"api_token": NEW_TOKEN}


def test_openapi_describes_the_patch_route_and_the_new_card_fields(world: World) -> None:
    doc = world.client("owner").get("/api/openapi.json").json()
    route = doc["paths"]["/api/integrations/{id}"]["patch"]
    assert {"200", "401", "403", "404", "413", "422"} <= set(route["responses"])
    body = route["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][body]["properties"]) == {"name", "enabled", "settings", "credentials"}
    card = doc["components"]["schemas"]["Card"]
    assert {"enabled", "paused_reason"} <= set(card["required"])
    assert card["properties"]["paused_reason"]["nullable"] is True
