"""Hostile and unlucky inputs over real HTTP (issue 11; DESIGN.md, HTTP API → Access checks and /log).

A wrong CSRF token of any content is 403, never 500; every answer, a 500 included, carries the security
headers; credentials are checked before a body is read, and bodies are capped; any integer `limit` is
clamped; the OpenAPI document needs credentials; and a 5,000-character name keeps the cookie small.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, update
from sqlalchemy import select as sql_select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import integrations, sync_requests, utcnow
from nurturehub_pipelines.web.app import SECURITY_HEADERS, build_app

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.web.conftest import LiveServer, World

PAGE = "/dashboard/settings/integrations"
MIB = 1024 * 1024


def assert_security_headers(answer: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (answer.status_code, name)
    assert answer.headers.get("cache-control") == "no-store"


def no_sync_requested(world: World) -> bool:
    with db.engine(world.db_url).connect() as conn:
        return conn.execute(sql_select(func.count()).select_from(sync_requests)).scalar_one() == 0


# CSRF: compared as bytes, so a token of any content is a plain 403.

NON_ASCII_TOKENS = ("é", "ünïcødé-tøkên", "令牌", "😀" * 8, "\x00\x7f")


@pytest.mark.parametrize("token", NON_ASCII_TOKENS)
def test_a_non_ascii_csrf_token_is_403_with_the_headers(world: World, token: str) -> None:
    browser, csrf = world.browser("owner")
    answers = [
        browser.post(f"/api/integrations/{world.a_reapit}/sync", data={"csrf_token": token}),
        browser.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": token}),
        browser.post(f"/api/integrations/{world.a_reapit}/sync", files={"csrf_token": (None, token.encode())}),
        browser.post("/signout", data={"csrf_token": token}),
    ]
    if token.isprintable():  # a header carries bytes as sent: UTF-8, as a client would encode it
        header = {"X-CSRF-Token": token.encode()}
        answers.append(browser.post(f"/api/integrations/{world.a_reapit}/sync", headers=header))
    for answer in answers:
        assert answer.status_code == 403, (answer.request.url, answer.status_code, answer.text[:200])
        assert_security_headers(answer)
    assert no_sync_requested(world)
    assert browser.get(PAGE).status_code == 200  # still signed in: the refused sign-out ended nothing
    assert browser.post(f"/api/integrations/{world.a_reapit}/sync", headers={"X-CSRF-Token": csrf}).status_code == 202


# Every answer carries the security headers, a 500 included.


@pytest.fixture
def failing_app(world: World, live_server: LiveServer) -> Iterator[World]:
    """The real app with two routes that raise, as a bug would: one under /api, one on the page."""

    def boom(_request: Request) -> Response:
        raise RuntimeError("a bug with secret detail s3cr3t")

    app = build_app(world.db_url)
    app.router.routes.append(Route("/api/boom", boom, methods=["GET", "POST"]))
    app.router.routes.append(Route("/boom", boom, methods=["GET"]))
    live_server.slot.app = app
    yield world


def test_an_unhandled_exception_is_a_500_with_the_security_headers(failing_app: World) -> None:
    client = failing_app.client("owner")
    api = client.get("/api/boom")
    assert api.status_code == 500
    assert_security_headers(api)
    assert api.headers["content-type"].startswith("application/json") and "detail" in api.json()
    page = client.get("/boom")
    assert page.status_code == 500
    assert_security_headers(page)
    for answer in (api, page, client.post("/api/boom", content=b"{}")):
        assert "s3cr3t" not in answer.text and "Traceback" not in answer.text
    assert client.get("/api/integrations").status_code == 200  # the server goes on serving


def test_refusals_and_not_found_carry_the_headers_too(world: World) -> None:
    anonymous = world.client()
    for answer in (
        anonymous.get("/api/integrations"),
        anonymous.get(PAGE),
        anonymous.get("/no/such/page"),
        world.client("member").get("/api/integrations"),
        world.client("owner").get("/api/integrations/999999/log"),
        world.client("owner").get(f"/api/integrations/{world.a_reapit}/log?limit=0"),
        world.client("owner").delete("/api/integrations"),
    ):
        assert_security_headers(answer)


# Authentication before the body: an anonymous POST is 401 (303 on the page) whatever its body.

MALFORMED = {"Content-Type": "multipart/form-data; boundary=zzz"}
MALFORMED_BODY = b"--zzz\r\nContent-Disposition: form-data\r\n\r\nno name, no end"


def test_an_anonymous_malformed_multipart_post_is_401_or_303(world: World) -> None:
    anonymous = world.client()
    wrong = world.client()
    wrong.headers["Authorization"] = "Bearer nh_not-a-real-token"
    for client in (anonymous, wrong):
        for path in (f"/api/integrations/{world.a_reapit}/sync", f"/api/integrations/{world.a_reapit}/errors/1/retry"):
            answer = client.post(path, content=MALFORMED_BODY, headers=MALFORMED)
            assert answer.status_code == 401, (path, answer.status_code, answer.text)
            assert answer.headers["www-authenticate"].lower().startswith("bearer")
            assert_security_headers(answer)
    for path in (f"{PAGE}/{world.a_reapit}/sync", f"{PAGE}/{world.a_reapit}/errors/1/retry"):
        answer = anonymous.post(path, content=MALFORMED_BODY, headers=MALFORMED)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin"), path
    member, _csrf = world.browser("member")
    assert member.post(f"{PAGE}/{world.a_reapit}/sync", content=MALFORMED_BODY, headers=MALFORMED).status_code == 403
    assert (
        world.client("member")
        .post(f"/api/integrations/{world.a_reapit}/sync", content=MALFORMED_BODY, headers=MALFORMED)
        .status_code
        == 403
    )
    assert no_sync_requested(world)


def upload(base_url: str, path: str, total: int, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """POST a `total`-byte multipart body over a raw socket, as fast as the server takes it; stop when
    the answer arrives. Returns (status, bytes of body sent by then)."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.netloc}",
        "Content-Type: multipart/form-data; boundary=zzz",
        f"Content-Length: {total}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sock.setblocking(False)
    chunk, sent, received, sending = b"--zzz\r\n" + b"x" * (64 * 1024 - 7), 0, b"", True
    deadline = time.monotonic() + 60
    try:
        while b"\r\n" not in received:
            assert time.monotonic() < deadline, f"no answer after {sent} bytes"
            readable, writable, _ = select.select([sock], [sock] if sending and sent < total else [], [], 1)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
            elif writable:
                try:
                    sent += sock.send(chunk[: total - sent])
                except BlockingIOError:
                    continue
                except ConnectionError:  # the server closed its side: only its answer is left to read
                    sending = False
    finally:
        sock.close()
    return int(received.split(b" ", 2)[1]), sent


def test_an_anonymous_40_mb_upload_is_answered_before_it_is_read(world: World) -> None:
    """The answer arrives while most of the body is still unsent: the server did not wait for it."""
    total = 40 * MIB
    for path, want in ((f"/api/integrations/{world.a_reapit}/sync", 401), (f"{PAGE}/{world.a_reapit}/sync", 303)):
        status, sent = upload(world.base_url, path, total)
        assert status == want, path
        assert sent < total // 2, f"{path}: {sent} of {total} bytes sent before the answer"
    status, sent = upload(world.base_url, f"/api/integrations/{world.a_reapit}/sync", total,
                          {"Authorization": f"Bearer {world.tokens['member']}"})  # fmt: skip
    assert status == 403 and sent < total // 2
    assert no_sync_requested(world)


def test_an_authenticated_body_over_the_cap_is_413_unread(world: World) -> None:
    total = 40 * MIB
    status, sent = upload(world.base_url, f"/api/integrations/{world.a_reapit}/sync", total,
                          {"Authorization": f"Bearer {world.tokens['owner']}"})  # fmt: skip
    assert status == 413 and sent < total // 2
    owner = world.client("owner")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
        yield b"csrf_token=x&pad="
        for _ in range(100):
            yield b"y" * 1024

    chunked = owner.post(f"/api/integrations/{world.a_reapit}/sync", content=chunks(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert chunked.status_code == 413 and "detail" in chunked.json()
    assert_security_headers(chunked)
    browser, csrf = world.browser("owner")
    padded = browser.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf, "pad": "z" * (70 * 1024)})
    assert padded.status_code == 413
    signin = world.client().post("/signin", data={"token": world.tokens["owner"], "pad": "z" * (10 * 1024)})
    assert signin.status_code == 413  # the one body read before authentication is capped smaller
    assert no_sync_requested(world)
    assert owner.post(f"/api/integrations/{world.a_reapit}/sync").status_code == 202  # a normal POST still works


# `limit`: any integer above 100 is clamped, however many digits; below 1 or not an integer is 422.


def test_limit_of_any_size_is_clamped_and_below_one_or_not_an_integer_is_422(world: World) -> None:
    start = utcnow() - timedelta(hours=3)
    for n in range(120):
        world.log(world.a_reapit, "contact_import", "success", f"page {n}", records_affected=n,
                  occurred_at=start + timedelta(seconds=n))  # fmt: skip
    client = world.client("owner")
    path = f"/api/integrations/{world.a_reapit}/log"
    for big in ("101", "100000000000000000000", "9" * 30, "9" * 5000, "+100000000000000000000", "0" * 40 + "7" * 25):
        answer = client.get(path, params={"limit": big})
        assert answer.status_code == 200, (big[:30], answer.text[:200])
        events = answer.json()["events"]
        assert len(events) == 100 and events[0]["records_affected"] == 119, big[:30]
    assert len(client.get(path, params={"limit": "0" * 30 + "5"}).json()["events"]) == 5
    for bad in ("0", "00000000000000000000000", "-1", "-100000000000000000000", "abc", "1.5", "1e2", "", "0x10",
                "٣", "10 0"):  # fmt: skip
        answer = client.get(path, params={"limit": bad})
        assert answer.status_code == 422, bad
        assert "detail" in answer.json()


# `/api/openapi.json` needs credentials like every route.


def test_openapi_needs_credentials(world: World) -> None:
    anonymous = world.client().get("/api/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].lower().startswith("bearer")
    wrong = world.client()
    wrong.headers["Authorization"] = "Bearer nh_not-a-real-token"
    assert wrong.get("/api/openapi.json").status_code == 401
    assert world.client("member").get("/api/openapi.json").status_code == 403
    for who in ("owner", "admin"):
        answer = world.client(who).get("/api/openapi.json")
        assert answer.status_code == 200 and answer.json()["openapi"].startswith("3.")
    browser, _csrf = world.browser("admin")
    assert browser.get("/api/openapi.json").status_code == 200


# The flash cookie stays small with a name of any length.


@pytest.mark.parametrize("name", ["N" * 5000, "Lettings é " * 500, "😀" * 5000])
def test_a_5000_character_name_keeps_the_cookie_under_4_kb(world: World, name: str) -> None:
    """SQLite stores any length; PostgreSQL's column stops at its declared length, the longest it can hold."""
    if world.db_url.startswith("postgresql"):
        name = name[: integrations.c.name.type.length]
    with db.engine(world.db_url).begin() as conn:  # written by another tool: the page must cope
        conn.execute(update(integrations).where(integrations.c.id == world.a_reapit).values(name=name))
    browser, csrf = world.browser("owner")
    for _ in range(2):  # 202, then 409: both notices name the integration
        answer = browser.post(f"{PAGE}/{world.a_reapit}/sync", data={"csrf_token": csrf})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert len(cookie.encode()) < 2048, len(cookie.encode())  # well under the 4 KB a browser keeps
        page = browser.get(PAGE)
        assert page.status_code == 200
        notice = page.text.split(f'id="integration-{world.a_reapit}-notice"', 1)[1].split("</p>", 1)[0]
        assert name[:20] in notice and "…" in notice
        assert len(page.headers.get("set-cookie", "").encode()) < 4000
    assert "sync" in notice.lower()
