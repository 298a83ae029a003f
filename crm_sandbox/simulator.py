"""What every CRM simulator shares: the request pipeline (faults, auth, rate limit, log), paging over
lazy datasets, cursors, parameter parsing and the OAuth client-credentials grant.

A CRM module only says how its wire looks: routes, error body, auth check and record rendering.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Enquiry, Item, Order, Person, SlotView, make_enquiry, make_person
from .faults import BODY_FAULTS, SLEEP_FAULTS, STATUS_FAULTS, Fault
from .state import CrmState, StreamName
from .tokens import basic_credentials, bearer_token, jwt_like_token, opaque_token

Handler = Callable[[Request], Awaitable[Response]]
Path = tuple[str | int, ...]

FAULT_MESSAGES = {
    "rate_limit": "Too many requests. Please slow down.",
    "server_error": "An unexpected error occurred.",
    "unavailable": "The service is temporarily unavailable.",
    "unauthorized": "The access credentials were rejected.",
    "forbidden": "Access to this resource is forbidden.",
}
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} Error</title></head><body><h1>Something went wrong"
    "</h1><p>The gateway could not complete your request (status {status}).</p></body></html>"
)


class InvalidParameter(Exception):
    """A query or path parameter the CRM would refuse; each simulator answers it in its error shape."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class ConnectionDropped(Exception):
    """Raised mid-body by the ``reset`` fault so the server drops the connection."""


class BrokenBodyResponse(Response):
    """Announces the full Content-Length, sends half the body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ConnectionDropped("sandbox fault: connection reset mid-body")


@dataclass(frozen=True)
class Endpoint:
    """A listing endpoint: its stream, route path, which half of a split stream it serves, id prefix."""

    stream: StreamName
    path: str
    part: int | None = None
    prefix: str = ""


@dataclass(frozen=True)
class NumberedPage:
    """One page of a page-numbered listing; ``next`` is the page number a next link should name."""

    records: list[dict[str, Any]]
    number: int
    size: int
    total: int
    pages: int
    next: int | None


def int_param(raw: str | None, field: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer parameter within ``minimum..maximum`` (over the cap is refused, as the CRMs do)."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(field, f"{field} must be an integer") from None
    if not minimum <= value <= maximum:
        raise InvalidParameter(field, f"{field} must be between {minimum} and {maximum}")
    return value


def since_param(raw: str | None, field: str) -> datetime | None:
    """An ISO 8601 modified-since parameter (naive means UTC)."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidParameter(field, f"{field} must be an ISO 8601 date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque paging token (base64url JSON)."""
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def decode_cursor(raw: str) -> dict[str, Any] | None:
    """The data of a token made by ``encode_cursor``, or None if it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _corrupt(record: dict[str, Any], variant: int, id_path: Path, ts_path: Path | None) -> None:
    """Make a record unusable: 0 drops its id, 1 breaks its timestamp, 2 nests its id in an object."""
    *parents, leaf = id_path
    holder: Any = record
    for key in parents:
        holder = holder[key]
    if variant == 2:
        holder[leaf] = {"value": holder[leaf]}
    elif variant == 1:
        if ts_path is None:
            holder[leaf] = None
        else:
            *ts_parents, ts_leaf = ts_path
            ts_holder: Any = record
            for key in ts_parents:
                ts_holder = ts_holder[key]
            ts_holder[ts_leaf] = "not-a-date"
    else:
        del holder[leaf]


class Simulator(ABC):
    """One CRM's API. Subclasses set the class attributes and implement the abstract methods."""

    crm: ClassVar[str]
    endpoints: ClassVar[Sequence[Endpoint]]
    id_path: ClassVar[Path] = ("id",)
    ts_paths: ClassVar[dict[str, Path]] = {}
    rate_limit: ClassVar[tuple[int, float] | None] = None
    block_after: ClassVar[int | None] = None
    limit_retry_after: ClassVar[bool] = True
    always_retry_after: ClassVar[bool] = False
    order: ClassVar[Order] = "modified"
    hide_deleted: ClassVar[bool] = False
    jwt_tokens: ClassVar[bool] = False
    media_type: ClassVar[str] = "application/json"
    error_media_type: ClassVar[str] = "application/json"
    token_path: ClassVar[str | None] = None
    token_form_client_id: ClassVar[bool] = False

    def __init__(self) -> None:
        self.state = CrmState(
            self.crm,
            rate_limit=self.rate_limit,
            block_after=self.block_after,
            token_factory=jwt_like_token if self.jwt_tokens else opaque_token,
        )

    # --- what each CRM defines -------------------------------------------------------------------
    @abstractmethod
    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """One page of ``endpoint`` in the CRM's envelope."""

    @abstractmethod
    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        """The CRM's error body."""

    @abstractmethod
    def authenticate(self, request: Request) -> Response | None:
        """None if the request carries this CRM's valid credentials, else the refusal."""

    @abstractmethod
    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        """The wire id of the record in ``slot``."""

    @abstractmethod
    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        """The record as this CRM sends it."""

    # --- responses ------------------------------------------------------------------------------
    def send(self, body: Any, headers: dict[str, str] | None = None) -> Response:
        """A 200 JSON answer in the CRM's media type."""
        return JSONResponse(body, headers=headers, media_type=self.media_type)

    def error(
        self,
        status: int,
        message: str,
        code: str = "",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        """An error in the CRM's shape (``extra`` adds fields, e.g. Reapit's 422 ``errors``)."""
        body = self.error_body(status, message, code or _default_code(status)) | (extra or {})
        return JSONResponse(body, status_code=status, headers=headers, media_type=self.error_media_type)

    def invalid(self, exc: InvalidParameter) -> Response:
        """How the CRM refuses a bad parameter (400 unless overridden)."""
        return self.error(400, exc.message, "InvalidParameter")

    def fault_response(self, fault: Fault) -> Response:
        """The answer of a status fault."""
        status = fault.status_code
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if fault.kind == "rate_limit" and self.always_retry_after:
            headers.setdefault("Retry-After", "1")
        if fault.kind == "html":
            return HTMLResponse(HTML_PAGE.format(status=status), status_code=status, headers=headers)
        return self.error(status, FAULT_MESSAGES[fault.kind], headers=headers)

    def throttle(self) -> Response | None:
        """None if the rate limiter admits the request, else the CRM's 429 (or agentOS's 403 block)."""
        verdict = self.state.limiter.check()
        if verdict is None:
            return None
        if verdict.kind == "blocked":
            return self.error(403, "Requests blocked after repeated rate limiting: wait before retrying.")
        headers = {"Retry-After": str(verdict.wait)} if self.limit_retry_after else {}
        return self.error(429, "Rate limit exceeded. Please slow down.", headers=headers)

    # --- the pipeline ---------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """The token route (if any) and each endpoint's route (a trailing slash is optional)."""
        routes: list[BaseRoute] = []
        if self.token_path:
            routes.append(self.route(self.token_path, self.token, "token", method="POST", guarded=False))
        for endpoint in self.endpoints:

            async def listing(request: Request, endpoint: Endpoint = endpoint) -> Response:
                return self.listing(request, endpoint)

            for path in {endpoint.path, endpoint.path.rstrip("/")}:
                routes.append(self.route(path, listing, endpoint.stream))
        return routes

    def route(self, path: str, handler: Handler, stream: str, *, method: str = "GET", guarded: bool = True) -> Route:
        """A route through the shared pipeline: fault, then (if guarded) auth and rate limit, then log."""

        async def endpoint(request: Request) -> Response:
            path = request.url.path.removeprefix(f"/{self.crm}")
            entry = self.state.log(request.method, path, dict(request.query_params))
            response = await self._respond(request, handler, self.state.faults.take(stream), guarded)
            entry["status"] = response.status_code
            return response

        return Route(path, endpoint, methods=[method])

    async def _respond(self, request: Request, handler: Handler, fault: Fault | None, guarded: bool) -> Response:
        if fault is not None and fault.kind in SLEEP_FAULTS:
            await asyncio.sleep(fault.sleep_seconds)
        elif fault is not None and fault.kind in STATUS_FAULTS:
            return self.fault_response(fault)
        if guarded and (refusal := self.authenticate(request) or self.throttle()) is not None:
            return refusal
        request.state.repeat = fault is not None and fault.kind == "repeat_next"
        try:
            response = await handler(request)
        except InvalidParameter as exc:
            response = self.invalid(exc)
        if fault is not None and fault.kind in BODY_FAULTS:
            body = bytes(response.body)
            broken = BrokenBodyResponse if fault.kind == "reset" else Response
            content = body if fault.kind == "reset" else body[: len(body) // 2]
            return broken(content, status_code=response.status_code, media_type=response.media_type)
        return response

    @staticmethod
    def repeating(request: Request) -> bool:
        """Whether a ``repeat_next`` fault owns this request: its next link must point back."""
        return bool(getattr(request.state, "repeat", False))

    # --- auth helpers ---------------------------------------------------------------------------
    def bearer_valid(self, request: Request, *static: str) -> bool:
        """Whether the Bearer token is one this CRM issued (and still valid) or a static one."""
        token = bearer_token(request.headers.get("authorization"))
        return token is not None and (token in static or self.state.tokens.valid(token))

    async def token(self, request: Request) -> Response:
        """OAuth2 client-credentials grant: Basic auth, form ``grant_type=client_credentials``."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        creds = SANDBOX_CREDENTIALS[self.crm]
        credentials = basic_credentials(request.headers.get("authorization"))
        if credentials != (creds["client_id"], creds["client_secret"]) or (
            self.token_form_client_id and form.get("client_id", [""])[0] != creds["client_id"]
        ):
            return self.error(401, "Invalid client credentials.", "invalid_client")
        if form.get("grant_type", [""])[0] != "client_credentials":
            return self.error(400, "grant_type must be client_credentials.", "unsupported_grant_type")
        body = {"access_token": self.state.tokens.issue(), "token_type": "Bearer", "expires_in": self.state.tokens.ttl}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    # --- data -----------------------------------------------------------------------------------
    def person(self, item: Item) -> Person:
        """The neutral contact behind a contacts item."""
        return make_person(self.state.data_seed, item.slot, item.version)

    def enquiry(self, item: Item) -> Enquiry:
        """The neutral lead behind a leads item."""
        return make_enquiry(self.state.data_seed, item.slot, item.version, self.state.contacts.size)

    def etag(self, endpoint: Endpoint, item: Item) -> str:
        """A version tag that changes whenever the record is touched or deleted."""
        key = f"{self.state.data_seed}:{endpoint.stream}:{item.slot}:{item.version}:{item.deleted_at}"
        return hashlib.md5(key.encode()).hexdigest()

    def stable_uuid(self, endpoint: Endpoint, slot: int) -> str:
        """A deterministic UUID for CRMs whose ids are GUIDs."""
        digest = hashlib.md5(f"{self.state.data_seed}:{endpoint.stream}:{endpoint.part}:{slot}".encode()).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    def contact_id(self, enquiry: Enquiry) -> str | None:
        """The wire id of the contact a lead links to."""
        if enquiry.contact_slot is None:
            return None
        contacts = next(e for e in self.endpoints if e.stream == "contacts")
        return self.record_id(contacts, enquiry.contact_slot)

    def view(self, endpoint: Endpoint, since: datetime | None = None) -> SlotView:
        """The endpoint's records visible to a query, lazily."""
        data = self.state.stream(endpoint.stream)
        return data.view(endpoint.part, since=since, order=self.order, hide_deleted=self.hide_deleted)

    def records(self, endpoint: Endpoint, view: SlotView, start: int, stop: int) -> list[dict[str, Any]]:
        """Rendered records at positions ``start..stop-1`` of ``view``."""
        data = self.state.stream(endpoint.stream)
        out = []
        for slot in view.window(start, stop):
            item = data.item(slot)
            record = self.render(endpoint, item)
            if item.malformed is not None:
                _corrupt(record, item.malformed, self.id_path, self.ts_paths.get(endpoint.stream))
            out.append(record)
        return out

    def numbered_page(
        self, request: Request, endpoint: Endpoint, *, number: int, size: int, since: datetime | None
    ) -> NumberedPage:
        """A page-numbered page. Under ``repeat_next`` the next page is this one and more pages are claimed."""
        view = self.view(endpoint, since)
        total = len(view)
        pages = math.ceil(total / size)
        records = self.records(endpoint, view, (number - 1) * size, number * size)
        if self.repeating(request):
            return NumberedPage(records, number, size, total, max(pages, number + 1), number)
        return NumberedPage(records, number, size, total, pages, number + 1 if number < pages else None)

    def read_cursor(self, raw: str, field: str) -> dict[str, Any]:
        """A paging token of the current dataset, else InvalidParameter (it expired or was forged)."""
        data = decode_cursor(raw)
        if data is None or data.get("g") != self.state.generation:
            raise InvalidParameter(field, f"{field} is invalid or has expired")
        return data

    def make_cursor(self, **data: Any) -> str:
        """A paging token bound to the current dataset."""
        return encode_cursor({"g": self.state.generation, **data})

    def external_ids(self, stream: StreamName, slots: list[int]) -> list[str]:
        """The ids clients store for these slots: the wire id with the endpoint prefix (crm-apis.md)."""
        data = self.state.stream(stream)
        mine = [e for e in self.endpoints if e.stream == stream]
        out = []
        for slot in slots:
            endpoint = next(e for e in mine if data.bounds(e.part)[0] <= slot < data.bounds(e.part)[1])
            out.append(endpoint.prefix + self.record_id(endpoint, slot))
        return out


def _default_code(status: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}.get(
        status, "ServerError" if status >= 500 else "Error"
    )


def iso(moment: datetime, fraction: str = "") -> str:
    """UTC ISO 8601 with 'Z'; ``fraction`` 'ms' or 'us' adds milliseconds or microseconds."""
    spec = {"": "seconds", "ms": "milliseconds", "us": "microseconds"}[fraction]
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")
