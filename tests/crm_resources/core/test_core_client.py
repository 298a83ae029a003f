"""The engine's error rules, on MockCRM: what is retried and how long it waits, what is not, and the words
each failure ends in (crm-apis.md, "Errors")."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from mock_crm import ClientFactory, Handler, page, read_ids

from crm_resources.core import CrmError, ErrorKind, Tuning


def answers(*responses: httpx.Response, then: httpx.Response | None = None) -> tuple[Handler, list[str]]:
    """A CRM that gives these answers in turn, then `then` (a one-record last page) for ever; and its log."""
    queue = list(responses)
    asked: list[str] = []

    def crm(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        return queue.pop(0) if queue else (then or page([{"id": "1"}]))

    return crm, asked


def fail(client: Any, stream: str = "contacts") -> CrmError:
    with pytest.raises(CrmError) as caught:
        read_ids(client, stream)
    return caught.value


def statuses(*codes: int, **kwargs: Any) -> Iterable[httpx.Response]:
    return [httpx.Response(code, **kwargs) for code in codes]


# --- 429 ----------------------------------------------------------------------------------------


def test_a_429_waits_its_retry_after_then_retries(make_client: ClientFactory, sleeps: list[float]) -> None:
    crm, asked = answers(httpx.Response(429, headers={"Retry-After": "7"}))
    assert read_ids(make_client(crm)) == ["1"]
    assert sleeps == [7.0] and len(asked) == 2


def test_a_429_without_retry_after_waits_the_crms_declared_default(
    make_client: ClientFactory, sleeps: list[float]
) -> None:
    crm, _ = answers(httpx.Response(429))
    assert read_ids(make_client(crm)) == ["1"]
    assert sleeps == [5.0]  # MockCRM declares 5 s, as agentOS declares 60 s
    crm, _ = answers(httpx.Response(429))
    assert read_ids(make_client(crm, tuning=Tuning(default_retry_after=0.5))) == ["1"]
    assert sleeps == [5.0, 0.5]  # tuning overrides it (tests scale it down)


def test_a_retry_after_longer_than_the_step_may_wait_ends_it_with_the_next_attempt_time(
    make_client: ClientFactory, sleeps: list[float]
) -> None:
    crm, asked = answers(httpx.Response(429, headers={"Retry-After": "3600"}))
    error = fail(make_client(crm))
    assert error.kind is ErrorKind.RATE_LIMIT and error.retry_at is not None
    assert error.message.startswith("MockCRM rate limit: next attempt at ")
    assert sleeps == [] and len(asked) == 1


def test_429s_beyond_the_attempt_budget_end_the_step_as_rate_limited(
    make_client: ClientFactory, sleeps: list[float]
) -> None:
    crm, asked = answers(*statuses(429, 429, 429, headers={"Retry-After": "1"}))
    error = fail(make_client(crm))
    assert error.kind is ErrorKind.RATE_LIMIT and "next attempt at" in error.message
    assert len(asked) == 3 and sleeps == [1.0, 1.0]


def test_a_403_after_429s_is_the_crm_blocking_us_and_stops_without_hammering(
    make_client: ClientFactory, sleeps: list[float]
) -> None:
    crm, asked = answers(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(403))
    error = fail(make_client(crm, blocked_after_rate_limit=True, tuning=Tuning(max_attempts=10)))
    assert error.kind is ErrorKind.RATE_LIMIT and error.retry_at is not None
    assert "MockCRM blocked NurtureHub after repeated rate-limit answers" in error.message
    assert "hammer" in error.message and "next attempt at" in error.message
    assert len(asked) == 2  # nothing after the 403


def test_a_403_after_429s_is_an_auth_error_for_a_crm_that_does_not_block(
    make_client: ClientFactory, sleeps: list[float]
) -> None:
    crm, _ = answers(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(403))
    assert fail(make_client(crm)).kind is ErrorKind.AUTH


def test_a_403_without_429s_is_an_auth_error_even_for_a_crm_that_blocks(make_client: ClientFactory) -> None:
    crm, _ = answers(httpx.Response(403))
    assert fail(make_client(crm, blocked_after_rate_limit=True)).kind is ErrorKind.AUTH


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_say_reconnect_and_are_never_retried(
    make_client: ClientFactory, sleeps: list[float], status: int
) -> None:
    crm, asked = answers(httpx.Response(status, json={"error": "nope"}))
    error = fail(make_client(crm))
    assert error.kind is ErrorKind.AUTH
    assert error.message == "MockCRM rejected the credentials — reconnect MockCRM in your CRM settings"
    assert len(asked) == 1 and sleeps == []


def test_a_crm_may_word_its_auth_failures_itself(make_client: ClientFactory) -> None:
    crm, _ = answers(httpx.Response(403))
    client = make_client(crm, auth_message=lambda name, status: f"{name} {status}: check the AgencyRef")
    assert fail(client).message == "MockCRM 403: check the AgencyRef"


# --- 5xx and transport faults ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_with_backoff(make_client: ClientFactory, sleeps: list[float], status: int) -> None:
    crm, asked = answers(httpx.Response(status), httpx.Response(status))
    assert read_ids(make_client(crm)) == ["1"]
    assert len(asked) == 3 and len(sleeps) == 2 and all(0 < s <= 0.03 for s in sleeps)


def test_a_503_honours_its_retry_after(make_client: ClientFactory, sleeps: list[float]) -> None:
    crm, _ = answers(httpx.Response(503, headers={"Retry-After": "4"}))
    assert read_ids(make_client(crm)) == ["1"]
    assert sleeps == [4.0]


def test_5xx_to_the_end_of_the_budget_gives_up_in_words(make_client: ClientFactory, sleeps: list[float]) -> None:
    crm, asked = answers(*statuses(500, 500, 500, json={"message": "database down"}))
    error = fail(make_client(crm))
    assert error.kind is ErrorKind.UPSTREAM and len(asked) == 3
    assert error.message.startswith("MockCRM answered /contacts with HTTP 500 (database down) — gave up after 3")
    assert "check MockCRM's service status" in error.message


def test_a_timeout_and_a_broken_connection_are_retried(make_client: ClientFactory, sleeps: list[float]) -> None:
    faults = [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")]

    def crm(request: httpx.Request) -> httpx.Response:
        if faults:
            raise faults.pop(0)
        return page([{"id": "1"}])

    assert read_ids(make_client(crm)) == ["1"] and len(sleeps) == 2


def test_a_crm_that_never_answers_is_named_with_the_timeout(make_client: ClientFactory, sleeps: list[float]) -> None:
    def crm(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow")

    error = fail(make_client(crm, tuning=Tuning(max_attempts=2, timeout_seconds=3)))
    assert error.kind is ErrorKind.UPSTREAM
    assert error.message.startswith("MockCRM did not answer /contacts within 3 s — gave up after 2 attempts")


# --- 4xx ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 422])
def test_400_404_422_need_an_engineer_and_are_not_retried(
    make_client: ClientFactory, sleeps: list[float], status: int
) -> None:
    crm, asked = answers(httpx.Response(status, json={"detail": "pageSize must be between 1 and 100"}))
    error = fail(make_client(crm))
    assert error.kind is ErrorKind.UPSTREAM
    assert f"MockCRM refused the request to /contacts (HTTP {status}: pageSize must be between 1 and 100)" in (
        error.message
    )
    assert "retrying will not help" in error.message
    assert len(asked) == 1 and sleeps == []


def test_a_crm_declared_expired_cursor_restarts_paging_from_the_first_page(make_client: ClientFactory) -> None:
    """Open API: a 400 invalid-cursor restarts the endpoint rather than failing the step."""
    pages = [page([{"id": "1"}], pages=2), httpx.Response(400, json={"type": "invalid-cursor"})]
    crm, asked = answers(*pages, then=page([{"id": "2"}], pages=1))
    client = make_client(crm, restart_paging=lambda response: response.status_code == 400)
    assert read_ids(client) == ["1", "2"]
    assert len(asked) == 3


# --- a bad 200 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,problem",
    [
        (httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}), "an HTML page"),
        (httpx.Response(200, text='{"data": [{"id": "1"', headers={"content-type": "application/json"}), "truncated"),
        (httpx.Response(200, json={"items": []}), "an unexpected envelope (no 'data' list)"),
    ],
    ids=["html", "truncated-json", "envelope"],
)
def test_a_bad_200_is_retried_once_then_fails_the_step(
    make_client: ClientFactory, sleeps: list[float], bad: httpx.Response, problem: str
) -> None:
    crm, asked = answers(bad)
    assert read_ids(make_client(crm)) == ["1"] and len(asked) == 2  # a glitch: the retry reads the page

    crm, asked = answers(bad, bad, bad)
    error = fail(make_client(crm, tuning=Tuning(max_attempts=5, backoff_initial_seconds=0.01)))
    assert error.kind is ErrorKind.BAD_RESPONSE and len(asked) == 2  # once, though the budget allows 5
    assert error.message.startswith(f"MockCRM sent {problem}") and "from /contacts" in error.message


# --- loops --------------------------------------------------------------------------------------


def test_a_repeated_next_link_stops_the_stream_and_keeps_what_was_read(make_client: ClientFactory) -> None:
    """Page 2 links back to page 2: the third request would be one already sent."""
    asked: list[str] = []

    def crm(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.query.decode())
        number = int(request.url.params["page"])
        body = {"data": [{"id": f"{number}"}], "next": "/contacts?page=2&size=2"}  # no page count: the link decides
        return httpx.Response(200, json=body)

    client = make_client(crm)
    pages = client.pages("contacts", None)
    assert [raw["id"] for raw in next(pages).records] == ["1"]
    assert [raw["id"] for raw in next(pages).records] == ["2"]
    with pytest.raises(CrmError) as caught:
        next(pages)
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert caught.value.message == (
        "MockCRM sent a next link for /contacts that repeats a page already read — stopped to avoid looping "
        "forever; the records read so far are kept"
    )
    assert len(asked) == 2


def test_the_same_page_under_a_new_page_number_stops_the_stream(make_client: ClientFactory) -> None:
    crm, asked = answers(then=page([{"id": "1"}, {"id": "2"}], pages=10))
    error = fail(make_client(crm))
    assert "sent a page of /contacts that repeats a page already read" in error.message
    assert len(asked) == 2


def test_a_modified_since_filter_is_sent_in_utc_as_the_crm_names_it(make_client: ClientFactory) -> None:
    seen: list[dict[str, str]] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return page([{"id": "1"}])

    client = make_client(crm)
    since = datetime(2026, 3, 2, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert [r["id"] for p in client.pages("contacts", since) for r in p.records] == ["1"]
    assert seen == [{"since": "2026-03-02T09:30:00Z", "page": "1", "size": "2"}]


def test_the_next_page_is_fetched_while_the_caller_writes_this_one(make_client: ClientFactory) -> None:
    second_asked = threading.Event()

    def crm(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        if number == 2:
            second_asked.set()
        return page([{"id": str(number)}], pages=2)

    pages = make_client(crm).pages("contacts", None)
    assert [raw["id"] for raw in next(pages).records] == ["1"]
    assert second_asked.wait(timeout=5)  # asked for before the caller wanted it
    assert [raw["id"] for p in pages for raw in p.records] == ["2"]
