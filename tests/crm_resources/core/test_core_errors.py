"""`Retry-After` in both of its forms, and the CRM's own words from each error body crm-apis.md lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from crm_resources.core import error_detail, parse_retry_after

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value,seconds", [("7", 7.0), (" 120 ", 120.0), ("0", 0.0)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_as_an_http_date_is_the_wait_until_then() -> None:
    assert parse_retry_after("Mon, 02 Mar 2026 09:00:30 GMT", now=NOW) == 30.0
    assert parse_retry_after("Mon, 02 Mar 2026 08:59:00 GMT", now=NOW) == 0.0  # already past: go now
    assert parse_retry_after("Mon, 02 Mar 2026 09:01:00 +0000", now=NOW) == 60.0


def test_retry_after_as_a_date_is_measured_from_the_real_clock_by_default() -> None:
    wait = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert wait is not None and wait > 365 * 24 * 3600


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
def test_unreadable_or_missing_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize(
    "body,words",
    [
        ({"errors": [{"code": "X", "message": "Alto is having a moment"}]}, "Alto is having a moment"),
        ({"errors": [{"detail": "page[size] must be between 1 and 100", "title": "Invalid"}]}, "page[size] must"),
        ({"type": "about:blank", "title": "Server Error", "detail": "the detail"}, "the detail"),
        ({"description": "pageSize must be between 1 and 100"}, "pageSize must be between 1 and 100"),
        ({"Message": "slow down"}, "slow down"),
        ({"error": "invalid_client", "error_description": "bad secret"}, "bad secret"),
    ],
    ids=["errors-message", "json-api", "problem-details", "description", "agentos", "oauth"],
)
def test_error_words_come_from_the_crms_own_body(body: dict[str, Any], words: str) -> None:
    assert error_detail(httpx.Response(400, json=body)).startswith(words)


def test_without_a_known_body_the_words_are_a_short_excerpt_or_the_reason() -> None:
    html = httpx.Response(502, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"})
    assert error_detail(html) == "an HTML error page"
    text = httpx.Response(500, text="upstream   timed\n out " + "x" * 300)
    assert error_detail(text).startswith("upstream timed out x") and len(error_detail(text)) == 120
    assert error_detail(httpx.Response(503)) == "Service Unavailable"
