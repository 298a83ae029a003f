"""The connector core: one httpx engine that every CRM declares itself on.

A CRM module states *what* its API is (auth, paging, envelope, rate, error words) as a `CrmSpec`
and a `CrmResource`; this module does *how*: the client-side rate limit, retries with backoff
(tenacity), `Retry-After`, loop-safe paging, and mapping every failure to an `ErrorKind` with a
message an agency owner can act on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import httpx
from dagster import ConfigurableResource
from pydantic import PrivateAttr
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential_jitter

from crm_resources.core.london import london_hhmm
from crm_resources.records import Contact, Lead

log = logging.getLogger("crm_resources")


# --- errors -----------------------------------------------------------------------------------


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


# --- rate limiting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    requests: int
    per_seconds: float


class RateLimiter:
    """At most `requests` in any rolling `per_seconds`, counted from when each answer arrived.

    Counting from the answer (not the send) keeps us inside a server-side rolling window even when
    network delays bunch our requests up on the server's side.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                while self._times and now - self._times[0] >= self.rate.per_seconds:
                    self._times.popleft()
                if len(self._times) < self.rate.requests:
                    self._times.append(now)
                    return
                time.sleep(self.rate.per_seconds - (now - self._times[0]) + 0.001)

    def answered(self) -> None:
        with self._lock:
            if self._times:
                self._times[-1] = self._clock()


# --- auth -------------------------------------------------------------------------------------


class HeaderAuth(httpx.Auth):
    """A static credential in one header: an API key, or a bearer token."""

    def __init__(self, header: str, value: str) -> None:
        self._header = header
        self._value = value

    @classmethod
    def bearer(cls, token: str) -> HeaderAuth:
        return cls("Authorization", f"Bearer {token}")

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers[self._header] = self._value
        yield request


class TokenRefused(Exception):
    """The token endpoint said no; the client classifies its response like any other."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token endpoint answered {response.status_code}")
        self.response = response


class OAuth2ClientCredentials(httpx.Auth):
    """Client-credentials grant with a token cache that knows when the token expires.

    A 401 on a data call gets one fresh token and one more try (crm-apis.md); a second 401 is
    the CRM rejecting the credentials.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        client_id_in_form: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_id_in_form = client_id_in_form
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.expires_in: float | None = None

    def token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self._client_id_in_form:
            form["client_id"] = self._client_id
        request = httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})
        return next(httpx.BasicAuth(self._client_id, self._client_secret).auth_flow(request))

    def accept(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise TokenRefused(response)
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise TokenRefused(response) from None
        if not isinstance(token, str) or not token:
            raise TokenRefused(response)
        self._token = token
        self.expires_in = expires_in
        # Renew a minute early (or at 90% of a short lifetime) so a page never races the expiry.
        self._expires_at = self._clock() + max(expires_in - 60, expires_in * 0.9)

    def forget(self) -> None:
        self._token = None

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if not self._valid():
            self.accept((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self.forget()
            self.accept((yield self.token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


# --- paging -----------------------------------------------------------------------------------


def dig(body: Any, path: str | None) -> Any:
    """`a.b.c` into nested dicts; None where any step is missing."""
    if path is None:
        return None
    for part in path.split("."):
        if not isinstance(body, Mapping):
            return None
        body = body.get(part)
    return body


@dataclass(frozen=True)
class PageRequest:
    url: str
    params: Mapping[str, str]
    page: int = 1  # page number, or offset for path paging
    read: int = 0  # records read from this endpoint before this page

    def key(self) -> str:
        return self.url + "?" + "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))


class Paginator(Protocol):
    page_size: int  # every paginator is a frozen dataclass with one: `with_page_size` replaces it

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest: ...

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None: ...


def with_page_size(paginator: Paginator, page_size: int) -> Paginator:
    """The same paging with another page size: the key check asks for 1, tests for small pages."""
    return replace(paginator, page_size=page_size)  # type: ignore[type-var]


def _more_claimed_but_empty(crm: str, request: PageRequest) -> CrmError:
    return CrmError(
        ErrorKind.BAD_RESPONSE,
        f"{crm} said more records follow {request.url} but sent an empty page — stopped rather than loop",
    )


@dataclass(frozen=True)
class PageNumberPaginator:
    """Page numbers (Reapit, Street, Loop). A declared total stops paging even if a next link says more;
    without a total, a next link (Reapit `_links.next`, JSON:API `links.next`) is followed as given."""

    page_param: str
    size_param: str
    page_size: int
    total_pages: str | None = None
    total_count: str | None = None
    next_link: str | None = None

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url, {**params, self.page_param: "1", self.size_param: str(self.page_size)})

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        read = request.read + count
        total_pages = dig(body, self.total_pages)
        total_count = dig(body, self.total_count)
        link = dig(body, self.next_link)
        if isinstance(total_pages, int):
            more = request.page < total_pages
        elif isinstance(total_count, int):
            more = read < total_count
        else:
            more = bool(link)
        if not more:
            return None
        if count == 0:
            raise _more_claimed_but_empty(crm, request)
        if isinstance(link, str) and link:
            url = httpx.URL(link)
            params = dict(url.params)
            page = (
                int(params.get(self.page_param, request.page + 1))
                if params.get(self.page_param, "").isdigit()
                else request.page + 1
            )
            return PageRequest(str(url.copy_with(query=None)), params, page, read)
        page = request.page + 1
        return PageRequest(request.url, {**request.params, self.page_param: str(page)}, page, read)


@dataclass(frozen=True)
class OffsetPathPaginator:
    """`/{offset}/{count}` in the path (agentOS); the envelope's total says where it ends."""

    page_size: int
    total_count: str

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url.format(offset=0, count=self.page_size), dict(params), page=0)

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        total = dig(body, self.total_count)
        offset = request.page + count
        if not isinstance(total, int) or offset >= total:
            return None
        if count == 0:
            raise _more_claimed_but_empty(crm, request)
        template = request.url.rsplit("/", 2)[0] + "/{offset}/{count}"
        return PageRequest(template.format(offset=offset, count=self.page_size), request.params, offset, offset)


@dataclass(frozen=True)
class CursorPaginator:
    """An opaque cursor or next-token (Alto, Open API) until the envelope says there is no more."""

    cursor_param: str
    next_cursor: str
    size_param: str
    page_size: int
    has_more: str | None = None

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url, {**params, self.size_param: str(self.page_size)})

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        cursor = dig(body, self.next_cursor)
        has_more = dig(body, self.has_more)
        more = has_more if isinstance(has_more, bool) else cursor not in (None, "")
        if not more:
            return None
        if not isinstance(cursor, str) or not cursor:
            raise CrmError(ErrorKind.BAD_RESPONSE, f"{crm} said more records follow {request.url} but sent no cursor")
        return PageRequest(request.url, {**request.params, self.cursor_param: cursor}, request.page + 1)


# --- the declaration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint of a stream. `prefix` keeps ids of a stream's two endpoints apart."""

    path: str
    prefix: str = ""
    label: str = ""


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_auth_message(crm_name: str, status: int) -> str:
    return f"{crm_name} rejected the credentials — reconnect {crm_name} in your CRM settings"


@dataclass(frozen=True)
class CrmSpec:
    """Everything that differs between CRMs, as data. The engine below does the rest."""

    crm: str
    crm_name: str
    contacts: tuple[Endpoint, ...]
    leads: tuple[Endpoint, ...]
    paginator: Paginator
    records: str  # where the envelope keeps the record list
    map_contact: Callable[[Mapping[str, Any], Endpoint], Contact]
    map_lead: Callable[[Mapping[str, Any], Endpoint], Lead]
    rate: Rate | None
    since_param: str | None  # None: no modified-since filter, every sync reads everything
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    auth_message: Callable[[str, int], str] = default_auth_message
    default_retry_after: float | None = None  # when a 429 carries no Retry-After
    blocked_after_rate_limit: bool = False  # agentOS: a 403 after 429s means "stop, don't hammer"
    missing_means_deleted: bool = False  # agentOS: a record gone from a full read may have withdrawn consent
    restart_paging: Callable[[httpx.Response], bool] | None = None  # Open API: expired cursor
    max_concurrency: int = 5  # runs of this CRM at once (the run queue's per-CRM ceiling)

    def endpoints(self, stream: str) -> tuple[Endpoint, ...]:
        return self.contacts if stream == "contacts" else self.leads


@dataclass(frozen=True)
class Tuning:
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_wait_seconds: float = 120.0  # a longer Retry-After ends the step with "next attempt at …"
    rate: Rate | None = None
    default_retry_after: float | None = None


@dataclass
class Page:
    endpoint: Endpoint
    records: list[Any]


# --- the engine -------------------------------------------------------------------------------


class CrmClient:
    """One integration's connection to one CRM, for the length of one sync."""

    def __init__(
        self,
        spec: CrmSpec,
        base_url: str,
        auth: httpx.Auth,
        *,
        tuning: Tuning,
        headers: Mapping[str, str] | None = None,
        path_vars: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.tuning = tuning
        self.auth = auth
        self.path_vars = dict(path_vars or {})
        self.requests_made = 0
        self._rate_limited = False
        rate = tuning.rate or spec.rate
        self._limiter = RateLimiter(rate) if rate else None
        # Exponential from the initial wait, capped, with up to one initial wait of jitter.
        self._backoff = wait_exponential_jitter(
            multiplier=tuning.backoff_initial_seconds,
            max=tuning.backoff_max_seconds,
            jitter=tuning.backoff_initial_seconds,
        )
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers={"Accept": "application/json", **spec.headers, **(headers or {})},
            timeout=httpx.Timeout(tuning.timeout_seconds),
            transport=transport,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_request(self, request: httpx.Request) -> None:
        if self._limiter:
            self._limiter.acquire()
        self.requests_made += 1

    def _on_response(self, response: httpx.Response) -> None:
        if self._limiter:
            self._limiter.answered()

    # -- public steps --

    def authenticate(self) -> str:
        """The auth step: fetch a token (OAuth), or check the key with one cheap request."""
        if isinstance(self.auth, OAuth2ClientCredentials):
            auth = self.auth
            self._call("token", lambda: auth.accept(self._http.send(auth.token_request(), auth=None)))
            minutes = round((auth.expires_in or 0) / 60)
            return f"{self.spec.crm_name} access token obtained (valid for {minutes} min)"
        endpoint = self.spec.contacts[0]
        probe = with_page_size(self.spec.paginator, 1).first(self._path(endpoint), self.spec.params)
        self._get_json(probe, endpoint)
        return f"{self.spec.crm_name} accepted the credentials"

    def pages(self, stream: str, since: datetime | None) -> Iterator[Page]:
        """Every page of every endpoint of the stream, in order, to the end, never looping.

        The next page is fetched while the caller writes this one (one page ahead, so memory stays flat):
        the CRM's latency and the database's overlap instead of adding up.
        """
        return read_ahead(self._pages(stream, since), name=f"{self.spec.crm}-{stream}")

    def _pages(self, stream: str, since: datetime | None) -> Iterator[Page]:
        params = dict(self.spec.params)
        if since is not None and self.spec.since_param:
            params[self.spec.since_param] = iso_z(since)
        for endpoint in self.spec.endpoints(stream):
            restarts = 0
            request = self.spec.paginator.first(self._path(endpoint), params)
            followed: set[str] = set()  # requests sent and pages received on this endpoint
            while request is not None:
                if request.key() in followed:
                    raise self._repeated(endpoint, "a next link for")
                followed.add(request.key())
                try:
                    body = self._get_json(request, endpoint)
                except CrmError as error:
                    if error.restart_paging and restarts < 3:
                        restarts += 1
                        followed.clear()
                        request = self.spec.paginator.first(self._path(endpoint), params)
                        continue
                    raise
                records = body[self.spec.records]
                if records:
                    # A page that repeats one already read, under a new page number or offset (Loop,
                    # agentOS: no link or cursor to compare), is the same loop by another road.
                    # The first and last records name a page: ids are unique, so only a repeat matches both.
                    edges = json.dumps([records[0], records[-1]], sort_keys=True, default=str)
                    digest = "#" + hashlib.sha256(edges.encode()).hexdigest()
                    if digest in followed:
                        raise self._repeated(endpoint, "a page of")
                    followed.add(digest)
                yield Page(endpoint, records)
                request = self.spec.paginator.next(request, body, len(records), self.spec.crm_name)

    # -- machinery --

    def _repeated(self, endpoint: Endpoint, what: str) -> CrmError:
        return CrmError(
            ErrorKind.BAD_RESPONSE,
            f"{self.spec.crm_name} sent {what} {self._label(endpoint)} that repeats a page already read — "
            "stopped to avoid looping forever; the records read so far are kept",
        )

    def _path(self, endpoint: Endpoint) -> str:
        return endpoint.path.format_map(_Keep(self.path_vars))

    def _label(self, endpoint: Endpoint) -> str:
        """The endpoint as an error names it: path variables filled in, paging slots (agentOS) left off."""
        return endpoint.label or self._path(endpoint).split("{")[0].rstrip("/") or endpoint.path

    def _url(self, url: str) -> str:
        """Endpoint paths are relative to the base URL; a next link may be absolute, relative to the base,
        or root-relative and so already carrying the base URL's path (then it must not be added twice)."""
        base_path = self._http.base_url.path.rstrip("/")
        if base_path and url.startswith(base_path + "/"):
            return str(self._http.base_url.copy_with(raw_path=url.encode()))
        return url

    def _get_json(self, request: PageRequest, endpoint: Endpoint) -> dict[str, Any]:
        label = self._label(endpoint)
        url = self._url(request.url)
        return self._call(label, lambda: self._parse(self._http.get(url, params=dict(request.params)), label))

    def _parse(self, response: httpx.Response, label: str) -> dict[str, Any]:
        error = self._classify(response, label)
        if error:
            raise error
        name = self.spec.crm_name
        content_type = response.headers.get("content-type", "")
        problem: str | None = None
        body: Any = None
        if "html" in content_type:
            problem = "an HTML page instead of JSON"
        else:
            try:
                body = response.json()
            except (ValueError, UnicodeDecodeError) as exc:
                problem = f"truncated or invalid JSON ({str(exc).split(':')[0]})"
        if problem is None and not (isinstance(body, dict) and isinstance(body.get(self.spec.records), list)):
            problem = f"an unexpected envelope (no '{self.spec.records}' list)"
        if problem:
            # A bad 200 is retried once (it may be a glitch), then fails the step.
            raise CrmError(
                ErrorKind.BAD_RESPONSE,
                f"{name} sent {problem} from {label}",
                retryable=True,
                max_attempts=2,
            )
        return body

    def _classify(self, response: httpx.Response, label: str) -> CrmError | None:
        status = response.status_code
        if status < 300:
            return None
        name = self.spec.crm_name
        detail = error_detail(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            self._rate_limited = True
            wait = (
                retry_after
                if retry_after is not None
                else (self.tuning.default_retry_after or self.spec.default_retry_after)
            )
            return CrmError(
                ErrorKind.RATE_LIMIT,
                f"{name} rate limit reached on {label}",
                retryable=True,
                retry_after=wait,
            )
        if status == 403 and self.spec.blocked_after_rate_limit and self._rate_limited:
            wait = self.tuning.default_retry_after or self.spec.default_retry_after or 60.0
            retry_at = datetime.now(UTC) + timedelta(seconds=wait)
            return CrmError(
                ErrorKind.RATE_LIMIT,
                f"{name} blocked NurtureHub after repeated rate-limit answers, so syncing stopped rather than "
                f"hammer it: next attempt at {london_hhmm(retry_at)}",
                retry_at=retry_at,
            )
        if status in (401, 403):
            return CrmError(ErrorKind.AUTH, self.spec.auth_message(name, status))
        if status >= 500:
            return CrmError(
                ErrorKind.UPSTREAM,
                f"{name} answered {label} with HTTP {status} ({detail})",
                retryable=True,
                retry_after=retry_after if status == 503 else None,
            )
        if self.spec.restart_paging and self.spec.restart_paging(response):
            return CrmError(ErrorKind.UPSTREAM, f"{name} expired the paging cursor on {label}", restart_paging=True)
        return CrmError(
            ErrorKind.UPSTREAM,
            f"{name} refused the request to {label} (HTTP {status}: {detail}) — this needs a NurtureHub "
            "engineer; retrying will not help",
        )

    def _call(self, label: str, attempt: Callable[[], Any]) -> Any:
        """One logical call: retried on transient faults within a bounded budget."""

        def once() -> Any:
            try:
                return attempt()
            except TokenRefused as refused:
                error = self._classify(refused.response, "token")
                if error is None or (error.kind is ErrorKind.UPSTREAM and refused.response.status_code < 500):
                    # A 200 without a token, or a 400 from the token endpoint: the grant was refused.
                    error = CrmError(ErrorKind.AUTH, self.spec.auth_message(self.spec.crm_name, 401))
                raise error from None
            except httpx.TimeoutException:
                raise CrmError(
                    ErrorKind.UPSTREAM,
                    f"{self.spec.crm_name} did not answer {label} within {self.tuning.timeout_seconds:g} s",
                    retryable=True,
                ) from None
            except httpx.TransportError as exc:
                raise CrmError(
                    ErrorKind.UPSTREAM,
                    f"the connection to {self.spec.crm_name} broke while reading {label} ({type(exc).__name__})",
                    retryable=True,
                ) from None

        retrying = Retrying(
            stop=stop_after_attempt(self.tuning.max_attempts),
            wait=self._wait,
            retry=self._should_retry,
            reraise=True,
            before_sleep=self._log_retry,
        )
        try:
            return retrying(once)
        except CrmError as error:
            raise self._final(error, retrying.statistics.get("attempt_number", 1)) from None

    def _should_retry(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, CrmError) or not error.retryable:
            return False
        if error.max_attempts is not None and state.attempt_number >= error.max_attempts:
            return False
        return error.retry_after is None or error.retry_after <= self.tuning.max_wait_seconds

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, CrmError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("%s; retrying in %.1f s (attempt %d)", error, wait, state.attempt_number + 1)

    def _final(self, error: CrmError, attempts: int) -> CrmError:
        """Give up in words: what happened, and what happens next."""
        name = self.spec.crm_name
        if error.kind is ErrorKind.RATE_LIMIT and error.retry_at is None:
            wait = error.retry_after or self.tuning.default_retry_after or self.spec.default_retry_after or 60.0
            retry_at = datetime.now(UTC) + timedelta(seconds=wait)
            return CrmError(
                ErrorKind.RATE_LIMIT,
                f"{name} rate limit: next attempt at {london_hhmm(retry_at)}",
                retry_at=retry_at,
            )
        if error.retryable and attempts > 1:
            return CrmError(
                error.kind,
                f"{error.message} — gave up after {attempts} attempts; NurtureHub tries again at the next sync. "
                f"If this persists, check {name}'s service status",
            )
        if error.retryable:
            return CrmError(error.kind, f"{error.message} — NurtureHub tries again at the next sync")
        return error


_DONE = object()


def read_ahead(pages: Iterator[Page], name: str) -> Iterator[Page]:
    """Run `pages` one item ahead on a thread; its exceptions surface here, in order, where the caller reads.

    Only reads run ahead: the caller still commits each page before it moves any cursor.
    """
    ahead: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        ahead.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed over to the reader, raised there
            ahead.put(exc)

    worker = threading.Thread(target=produce, name=f"read-ahead-{name}", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


class _Keep(dict[str, str]):
    """format_map that leaves `{offset}`/`{count}` for the paginator to fill."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# --- the Dagster resource ---------------------------------------------------------------------


class CrmResource(ConfigurableResource):
    """What every CRM resource shares: tuning of the engine. Subclasses declare the CRM.

    Per-integration settings and credentials come from the app database at run time, so no secret
    ever passes through run config; NurtureHub's own app credentials come from `EnvVar`s.
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_wait_seconds: float = 120.0
    rate_limit_requests: int | None = None  # override the CRM's published rate (tests scale it down)
    rate_limit_per_seconds: float | None = None
    default_retry_after_seconds: float | None = None  # override the CRM's wait for a bare 429

    spec: ClassVar[CrmSpec]
    settings_keys: ClassVar[tuple[str, ...]] = ()
    # Each tuple is one accepted set of credential names (Open API: a token, or an id and secret).
    credential_sets: ClassVar[tuple[tuple[str, ...], ...]] = ((),)

    page_size: int | None = None  # override the CRM's page size for every paginator (tests: many small pages)

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)

    def tuning(self) -> Tuning:
        rate = None
        if self.rate_limit_requests and self.rate_limit_per_seconds:
            rate = Rate(self.rate_limit_requests, self.rate_limit_per_seconds)
        return Tuning(
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            max_wait_seconds=self.max_wait_seconds,
            rate=rate,
            default_retry_after=self.default_retry_after_seconds,
        )

    def client(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> CrmClient:
        base_url, auth, headers, path_vars = self.connection(settings, credentials)
        spec = self.spec
        if self.page_size:
            spec = replace(spec, paginator=with_page_size(spec.paginator, self.page_size))
        return CrmClient(
            spec,
            base_url,
            auth,
            tuning=self.tuning(),
            headers=headers,
            path_vars=path_vars,
            transport=self._transport,
        )

    @abstractmethod
    def connection(
        self, settings: Mapping[str, str], credentials: Mapping[str, str]
    ) -> tuple[str, httpx.Auth, Mapping[str, str], Mapping[str, str]]:
        """(base URL, auth, extra headers, path variables) for one integration."""
