"""The engine every CRM declares itself on: rate limit, retries with backoff (tenacity), `Retry-After`,
loop-safe paging, and mapping every failure to an `ErrorKind` with a message an agency owner can act on."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential_jitter

from crm_resources.core.auth import OAuth2ClientCredentials, TokenRefused
from crm_resources.core.errors import CrmError, ErrorKind, error_detail, parse_retry_after
from crm_resources.core.london import london_hhmm
from crm_resources.core.paging import PageRequest, with_page_size
from crm_resources.core.ratelimit import RateLimiter
from crm_resources.core.readahead import read_ahead
from crm_resources.core.spec import CrmSpec, Endpoint, Page, Tuning, iso_z

log = logging.getLogger("crm_resources")


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
        self._origin = _origin(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

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
            request: PageRequest | None = self.spec.paginator.first(self._path(endpoint), params)
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
        params = dict(request.params)
        # Checked on the URL exactly as it would be sent: a next link to another origin gets no request at
        # all, so the integration's credentials never leave the CRM's own API.
        target = self._http.build_request("GET", url, params=params).url
        if _origin(target) != self._origin:
            raise self._elsewhere(label, target)
        return self._call(label, lambda: self._parse(self._http.get(url, params=params), label))

    def _elsewhere(self, label: str, target: httpx.URL) -> CrmError:
        name = self.spec.crm_name
        return CrmError(
            ErrorKind.BAD_RESPONSE,
            f"{name} sent a next link on {label} that points to another server ({_where(target)}), not "
            f"{name}'s own API at {_where(self._http.base_url)} — NurtureHub did not follow it, so your "
            f"credentials were not sent there; the records read so far are kept. Ask {name} to fix its "
            "paging links, or check the API address in your CRM settings",
        )

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
                body = _json(response)
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


def _json(response: httpx.Response) -> Any:
    """orjson first (pages are most of a sync's parsing); a body it refuses (not UTF-8: httpx honours a
    declared charset) gets httpx's own decoding, whose error, if any, is the one reported. Neither
    accepts NaN or Infinity, which JSON does not have (and orjson would write back as null)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json(parse_constant=_not_json)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: httpx lower-cases the host and drops a scheme's default port, so
    `https://api.example:443` and `https://API.example` are the same origin."""
    return (url.scheme, url.host, url.port)


def _where(url: httpx.URL) -> str:
    """An origin as an error names it: never the path or query, which may carry a token."""
    where = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port is not None else "")
    return where if len(where) <= 100 else where[:99] + "…"


class _Keep(dict[str, str]):
    """format_map that leaves `{offset}`/`{count}` for the paginator to fill."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
