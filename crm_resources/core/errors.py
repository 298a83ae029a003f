"""How a CRM call fails, in words an agency owner can act on: the kinds, the error, and reading the CRM's
own error body and `Retry-After`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx


class ErrorKind(StrEnum):
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    UPSTREAM = "upstream"
    BAD_RESPONSE = "bad_response"
    DATA = "data"
    INTERNAL = "internal"


class CrmError(Exception):
    """A failure of one CRM call, classified, with words an agency owner can act on."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
        max_attempts: int | None = None,
        restart_paging: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.retry_at = retry_at
        self.max_attempts = max_attempts  # a tighter budget than the client's (a bad 200 body: 2)
        self.restart_paging = restart_paging

    def __str__(self) -> str:
        return self.message


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_detail(response: httpx.Response) -> str:
    """The CRM's own words from any of the error bodies in crm-apis.md, else a short excerpt."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            words = first.get("detail") or first.get("message") or first.get("title")
            if words:
                return str(words)
        for key in ("detail", "description", "Message", "message", "title", "error_description", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    if "html" in response.headers.get("content-type", ""):
        return "an HTML error page"
    excerpt = " ".join(response.text.split())[:120]
    return excerpt or response.reason_phrase
