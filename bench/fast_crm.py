"""A CRM server for benchmarks only, fast enough that it is never what a sync benchmark measures.

    python -m bench.fast_crm [--crm openapi|reapit] [--contacts 100000] [--leads 50000] [--port 0]
    python -m bench.fast_crm --proof [...]   # start it, prove it with a bare httpx client, stop

The sandbox (crm_sandbox/) renders every page on request behind Starlette: ~16,000 records/s to a bare
client, which made "the limit" its own speed. This server renders every record once, before it says it is
ready, to JSON bytes (with the sandbox's own record generators, `make_person`/`make_enquiry`, and exactly
the shapes crm-apis.md gives), joins them into every page of the page sizes clients use (Open API
`limit` 100 and 500, Reapit `pageSize` 100), and then serves those bytes from memory: a raw asyncio
`Protocol` (uvloop when importable), HTTP/1.1 keep-alive, a minimal request parser. A page of another
size, or one that starts elsewhere (an `updated_since`/`modifiedFrom` filter), is joined from the
pre-rendered records on first request and cached.

The dataset comes in versions under a path prefix, so a round needs no control call:
- `/r1`: every record at version 0; `/r2`: every record changed (a later `updated_at`/`modified`, and a
  changed field: the contact's mobile, the lead's status, Reapit's `_eTag`); `/r3`: changed again;
- `/t3`: `/r3` with 0.1 % of each stream touched (version 3, stamped after every r3 record, so they move
  to the end in `(updated_at, id)` order): what an incremental sync after a full r3 sync finds.

`GET /_requests` answers the requests served per path since the last time it was asked (and resets), and
apart, under "<path> (page size 1)", how many of them asked for one record (a key check's probe): the
incremental measurement counts its requests per stream with it.

Routes (`{crm}` is `openapi` or `reapit`, `{v}` one of the versions):
- Open API: `GET /openapi/{v}/contacts|leads?limit=&cursor=&updated_since=`, bearer `OPENAPI_TOKEN`;
  `POST /openapi/{v}/oauth/token` (client credentials) also answers a token.
- Reapit: `POST /reapit/token` (Basic auth, form `grant_type=client_credentials&client_id=`);
  `GET /reapit/{v}/contacts/|applicants/?pageSize=&pageNumber=&sortBy=modified&modifiedFrom=`, with
  the headers the client sends (`Authorization: Bearer`, `api-version: 2020-01-31`, `reapit-customer`).

It prints one JSON line on stdout when it serves: its base URLs (and the token, credentials, versions).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bench.common import stop
from crm_sandbox.datasets import Enquiry, Person, base_time, make_enquiry, make_person

SEED = "fast-crm"
VERSIONS = ("r1", "r2", "r3", "t3")
ROUND_GAP = timedelta(days=400)  # each round's stamps are after every stamp of the round before
OPENAPI_TOKEN = "fast-crm-openapi-token"
OPENAPI_CLIENT = ("fast-openapi-client", "fast-openapi-secret")
REAPIT_CLIENT = ("fast-reapit-client", "fast-reapit-secret")
REAPIT_CUSTOMER = "SBOX"
REAPIT_TOKEN = "fast-crm-reapit-token"
API_VERSION = "2020-01-31"
PRESIZES = {"openapi": (100, 500), "reapit": (100,)}
SIZE_ONE = "{path} (page size 1)"  # /_requests counts these apart too: the auth step's key check asks for 1
_TYPES = {"sales": "sales_applicant", "lettings": "lettings_applicant", "valuation": "valuation"}
_TYPES["enquiry"] = "general_enquiry"
_CONSENT = {"granted": "grant", "denied": "deny", "unknown": "notAsked"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- the records ------------------------------------------------------------------------------


def touched_slots(size: int, seed: str = SEED) -> list[int]:
    """The 0.1 % of a stream that /t3 changes (at least one), chosen deterministically."""
    count = max(1, size // 1000) if size else 0
    return sorted(random.Random(f"{seed}:{size}").sample(range(size), count))


def stamps(version: str, slot: int, touched: set[int], size: int) -> tuple[int, datetime]:
    """(record version, its updated_at) for one slot in one dataset version."""
    if version == "t3":
        if slot in touched:
            return 3, base_time(size) + 2 * ROUND_GAP + timedelta(days=1)
        return 2, base_time(slot) + 2 * ROUND_GAP
    round_index = VERSIONS.index(version)
    return round_index, base_time(slot) + round_index * ROUND_GAP


def created(slot: int) -> datetime:
    return base_time(slot) - timedelta(hours=(slot * 7919) % 2000)


def _phones(person: Person) -> list[dict[str, Any]]:
    numbers = [("mobile", person.mobile), ("home", person.home), ("work", person.work)]
    present = [(kind, value) for kind, value in numbers if value]
    return [{"value": value, "type": kind, "primary": index == 0} for index, (kind, value) in enumerate(present)]


def openapi_contact(slot: int, version: int, updated: datetime) -> dict[str, Any]:
    """crm-apis.md "NurtureHub Open API" contact, as the sandbox renders it."""
    person = make_person(SEED, slot, version)
    return {
        "id": f"con_{slot:08d}",
        "first_name": person.first_name,
        "last_name": person.last_name,
        "emails": [] if person.email is None else [{"value": person.email, "primary": True}],
        "phones": _phones(person),
        "marketing_consent": {"status": person.consent},
        "created_at": iso(created(slot)),
        "updated_at": iso(updated),
        "deleted_at": None,
    }


def openapi_lead(slot: int, version: int, updated: datetime, contacts: int) -> dict[str, Any]:
    enquiry = make_enquiry(SEED, slot, version, contacts)
    return {
        "id": f"lead_{slot:08d}",
        "contact_id": None if enquiry.contact_slot is None else f"con_{enquiry.contact_slot:08d}",
        "type": _TYPES[enquiry.kind],
        "status": enquiry.status,
        "source": enquiry.source,
        "created_at": iso(created(slot)),
        "updated_at": iso(updated),
        "deleted_at": None,
    }


def _etag(stream: str, slot: int, version: int) -> str:
    import hashlib

    return hashlib.md5(f"{SEED}:{stream}:{slot}:{version}".encode()).hexdigest()


def reapit_contact(slot: int, version: int, updated: datetime) -> dict[str, Any]:
    """crm-apis.md "Reapit Foundations" contact, as the sandbox renders it."""
    person = make_person(SEED, slot, version)
    record_id = f"SBC{26_000_000 + slot}"
    return {
        "id": record_id,
        "created": iso(created(slot)),
        "modified": iso(updated),
        "title": person.title,
        "forename": person.first_name,
        "surname": person.last_name,
        "email": person.email,
        "mobilePhone": person.mobile,
        "homePhone": person.home,
        "workPhone": person.work,
        "marketingConsent": _CONSENT[person.consent],
        "officeIds": [f"OF{person.branch}"],
        "active": True,
        "_eTag": _etag("contacts", slot, version),
        "_links": {"self": {"href": f"/contacts/{record_id}"}},
    }


def reapit_applicant(slot: int, version: int, updated: datetime, contacts: int) -> dict[str, Any]:
    enquiry: Enquiry = make_enquiry(SEED, slot, version, contacts)
    renting = enquiry.kind == "lettings"
    person = enquiry.person
    related = (
        []
        if enquiry.contact_slot is None
        else [
            {
                "id": f"SBC{26_000_000 + enquiry.contact_slot}",
                "name": f"{person.title} {person.first_name} {person.last_name}",
                "type": "contact",
                "email": person.email,
            }
        ]
    )
    return {
        "id": f"SBA{26_000_000 + slot}",
        "created": iso(created(slot)),
        "modified": iso(updated),
        "marketingMode": "renting" if renting else "buying",
        "currency": "GBP",
        "buying": None if renting else {"priceFrom": enquiry.price_min, "priceTo": enquiry.price_max},
        "renting": {"rentFrom": enquiry.rent_min, "rentTo": enquiry.rent_max, "rentFrequency": "monthly"}
        if renting
        else None,
        "bedroomsMin": enquiry.beds_min,
        "bedroomsMax": enquiry.beds_max,
        "source": {"id": enquiry.source, "type": "source"},
        "related": related,
        "active": True,
        "_eTag": _etag("leads", slot, version),
    }


@dataclass
class Stream:
    """One stream of one dataset version: records as JSON bytes in `(updated_at, id)` order, pages cached."""

    records: list[bytes]
    updated: list[datetime]
    pages: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (start, size) -> body

    def start_since(self, since: datetime | None) -> int:
        """The first position whose updated_at is at or after `since` (inclusive filter)."""
        return 0 if since is None else bisect.bisect_left(self.updated, since)


def build_stream(crm: str, stream: str, version: str, contacts: int, leads: int, same: Stream | None = None) -> Stream:
    """Render every record of one stream once; sort by (updated_at, id) as both APIs order them.

    `same` is a version whose records in slot order are this one's but for the touched ones (r3 for t3):
    those are reused, not rendered again.
    """
    size = contacts if stream == "contacts" else leads
    touched = set(touched_slots(size))
    rendered: list[tuple[datetime, int, bytes]] = []
    for slot in range(size):
        record_version, updated = stamps(version, slot, touched, size)
        if same is not None and slot not in touched:
            rendered.append((updated, slot, same.records[slot]))
            continue
        if crm == "openapi":
            record = (
                openapi_contact(slot, record_version, updated)
                if stream == "contacts"
                else openapi_lead(slot, record_version, updated, contacts)
            )
        else:
            record = (
                reapit_contact(slot, record_version, updated)
                if stream == "contacts"
                else reapit_applicant(slot, record_version, updated, contacts)
            )
        rendered.append((updated, slot, json.dumps(record, separators=(",", ":")).encode()))
    rendered.sort(key=lambda entry: (entry[0], entry[1]))
    return Stream([entry[2] for entry in rendered], [entry[0] for entry in rendered])


# --- the pages --------------------------------------------------------------------------------


def openapi_page(data: Stream, start: int, limit: int) -> bytes:
    stop = min(start + limit, len(data.records))
    more = stop < len(data.records)
    cursor = f'"c{stop}"' if more else "null"
    body = b",".join(data.records[start:stop])
    meta = f'],"meta":{{"next_cursor":{cursor},"has_more":{"true" if more else "false"}}}}}'
    return b'{"data":[' + body + meta.encode()


def reapit_page(data: Stream, path: str, number: int, size: int, since_raw: str | None, start: int) -> bytes:
    total = len(data.records) - start
    pages = -(-total // size)
    lo = start + (number - 1) * size
    body = b",".join(data.records[lo : min(lo + size, len(data.records))])
    extra = {"sortBy": "modified", **({"modifiedFrom": since_raw} if since_raw else {})}

    def href(page: int) -> dict[str, str]:
        return {"href": f"{path}?{urlencode({'pageSize': size, 'pageNumber': page, **extra})}"}

    links = {"self": href(number), "first": href(1)}
    if number > 1:
        links["prev"] = href(number - 1)
    if number < pages:
        links["next"] = href(number + 1)
    count = max(0, min(size, total - (number - 1) * size))
    tail = {
        "pageNumber": number,
        "pageSize": size,
        "pageCount": count,
        "totalPageCount": pages,
        "totalCount": total,
        "_links": links,
    }
    return b'{"_embedded":[' + body + b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]


class Dataset:
    """Every version of one CRM's two streams, rendered, with the default page sizes pre-joined."""

    def __init__(self, crm: str, contacts: int, leads: int, versions: Sequence[str] = VERSIONS) -> None:
        self.crm, self.contacts, self.leads = crm, contacts, leads
        self.streams: dict[tuple[str, str], Stream] = {}
        for version in versions:
            for stream in ("contacts", "leads"):
                same = self.streams.get(("r3", stream)) if version == "t3" else None  # r3 is in slot order
                data = build_stream(crm, stream, version, contacts, leads, same)
                self.streams[(version, stream)] = data
                for size in PRESIZES[crm]:
                    count = max(1, -(-len(data.records) // size))
                    for at in range(count):  # Open API: a start position; Reapit: a page number
                        self.page(version, stream, at * size if crm == "openapi" else at + 1, size, None)

    def page(self, version: str, stream: str, start: int, size: int, since_raw: str | None) -> bytes:
        """The body of one page (cached): Open API from position `start`; Reapit page number `start`.

        Unfiltered pages are cached; a filtered one (an incremental sync's few) is joined on request.
        """
        data = self.streams[(version, stream)]
        cached = data.pages.get((start, size)) if since_raw is None else None
        if cached is not None:
            return cached
        if self.crm == "openapi":
            body = openapi_page(data, start, size)
        else:
            path = "/contacts/" if stream == "contacts" else "/applicants/"
            since = parse_since(since_raw)
            body = reapit_page(data, path, start, size, since_raw, data.start_since(since))
        if since_raw is None:
            data.pages[(start, size)] = body
        return body


def parse_since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- HTTP -------------------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], media: str = "application/json") -> None:
        self.status, self.body, self.media = status, body, media


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Unprocessable"}


def response(status: int, body: bytes, media: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {media}\r\n"
    return (head + f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body


def problem(status: int, slug: str, detail: str) -> HttpError:
    body = {"type": f"https://api.nurturehub.co.uk/problems/{slug}", "title": REASONS.get(status, "Error")}
    return HttpError(status, {**body, "status": status, "detail": detail}, "application/problem+json")


def reapit_error(status: int, description: str) -> HttpError:
    return HttpError(status, {"statusCode": status, "dateTime": iso(datetime.now(UTC)), "description": description})


def basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


class App:
    """Routing and the two APIs' rules, over the pre-rendered dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.data = dataset
        self.requests: Counter[str] = Counter()
        self.token_body = json.dumps(
            {"access_token": REAPIT_TOKEN if dataset.crm == "reapit" else OPENAPI_TOKEN, "token_type": "Bearer"}
            | {"expires_in": 3600}
        ).encode()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        try:
            return response(200, self.route(method, target, headers, body))
        except HttpError as exc:
            return response(exc.status, json.dumps(exc.body).encode(), exc.media)

    def route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        path, _, query = target.partition("?")
        if path == "/_requests":
            counts, self.requests = dict(self.requests), Counter()
            return json.dumps(counts).encode()
        self.requests[path] += 1
        parts = path.strip("/").split("/")
        if not parts or parts[0] != self.data.crm:
            raise HttpError(404, {"detail": f"no such path: {path}"})
        if self.data.crm == "reapit":
            return self.reapit(method, parts[1:], query, headers, body)
        return self.openapi(method, parts[1:], query, headers, body)

    # Open API
    def openapi(self, method: str, parts: list[str], query: str, headers: dict[str, str], body: bytes) -> bytes:
        if len(parts) == 3 and parts[1:] == ["oauth", "token"] and method == "POST":
            form = dict(parse_qsl(body.decode()))
            if basic(headers.get("authorization")) != OPENAPI_CLIENT or form.get("grant_type") != "client_credentials":
                raise problem(401, "invalid-client", "Invalid client credentials.")
            return self.token_body
        if len(parts) != 2 or method != "GET" or parts[1] not in ("contacts", "leads"):
            raise problem(404, "not-found", "No such resource.")
        version, stream = parts
        if (version, stream) not in self.data.streams:
            raise problem(404, "not-found", f"No dataset version {version!r}.")
        if headers.get("authorization") != f"Bearer {OPENAPI_TOKEN}":
            raise problem(401, "unauthorized", "The bearer token is missing, invalid or has expired.")
        params = dict(parse_qsl(query))
        try:
            limit = int(params.get("limit", "100"))
            since = parse_since(params.get("updated_since"))
        except ValueError as exc:
            raise problem(400, "invalid-parameter", str(exc)) from exc
        if not 1 <= limit <= 500:
            raise problem(400, "invalid-parameter", "limit must be between 1 and 500")
        if limit == 1:  # a key check's probe, told apart in /_requests
            self.requests[SIZE_ONE.format(path="/" + "/".join([self.data.crm, *parts]))] += 1
        cursor = params.get("cursor")
        if cursor:
            if not (cursor.startswith("c") and cursor[1:].isdigit()):
                raise problem(400, "invalid-cursor", "cursor is invalid or has expired")
            start = int(cursor[1:])
        else:
            start = self.data.streams[(version, stream)].start_since(since)
        return self.data.page(version, stream, start, limit, None)

    # Reapit
    def reapit(self, method: str, parts: list[str], query: str, headers: dict[str, str], body: bytes) -> bytes:
        if parts == ["token"] and method == "POST":
            form = dict(parse_qsl(body.decode()))
            if basic(headers.get("authorization")) != REAPIT_CLIENT or form.get("client_id") != REAPIT_CLIENT[0]:
                raise HttpError(401, {"error": "invalid_client"})
            if form.get("grant_type") != "client_credentials":
                raise HttpError(400, {"error": "unsupported_grant_type"})
            return self.token_body
        streams = {"contacts": "contacts", "applicants": "leads"}
        if len(parts) != 2 or method != "GET" or parts[1] not in streams:
            raise reapit_error(404, "No such resource.")
        version, stream = parts[0], streams[parts[1]]
        if (version, stream) not in self.data.streams:
            raise reapit_error(404, f"No dataset version {version!r}.")
        if headers.get("authorization") != f"Bearer {REAPIT_TOKEN}":
            raise reapit_error(401, "The access token is missing, invalid or has expired.")
        if headers.get("api-version") != API_VERSION:
            raise reapit_error(400, f"The api-version header is required and must be {API_VERSION}.")
        if headers.get("reapit-customer") != REAPIT_CUSTOMER:
            raise reapit_error(403, "This app is not installed for the customer in the reapit-customer header.")
        params = {key.lower(): value for key, value in parse_qsl(query)}
        try:
            size = int(params.get("pagesize", "25"))
            number = int(params.get("pagenumber", "1"))
            since_raw = params.get("modifiedfrom")
            parse_since(since_raw)
        except ValueError as exc:
            raise HttpError(422, {"statusCode": 422, "description": str(exc)}) from exc
        if not (1 <= size <= 100 and number >= 1) or params.get("sortby") not in (None, "modified"):
            raise HttpError(422, {"statusCode": 422, "description": "One or more parameters are invalid."})
        if size == 1:  # a key check's probe, told apart in /_requests
            self.requests[SIZE_ONE.format(path="/" + "/".join(["reapit", *parts]) + "/")] += 1
        return self.data.page(version, stream, number, size, since_raw)


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with the least parsing that serves these clients (no chunked request bodies)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, target, _ = (head[0].split(" ") + ["", ""])[:3]
            assert self.transport is not None
            self.transport.write(self.app.handle(method, target, headers, body))
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
                return


def serve(dataset: Dataset, host: str, port: int, ready: Callable[[int], None]) -> None:
    """Serve until SIGTERM/SIGINT, on uvloop when it is importable (it is, with uvicorn[standard])."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = App(dataset)
    server = loop.run_until_complete(loop.create_server(lambda: HttpProtocol(app), host, port, backlog=128))
    ready(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())


# --- in another process, and the proof ---------------------------------------------------------


@dataclass
class FastCrm:
    """A running fast CRM server: where it is and how to authenticate."""

    crm: str
    root_url: str
    process: subprocess.Popen[str] | None

    def base_url(self, version: str) -> str:
        """The Open API base URL of one dataset version (Reapit: the API base of that version)."""
        return f"{self.root_url}/{self.crm}/{version}"

    @property
    def token_url(self) -> str:
        return f"{self.root_url}/reapit/token"

    def env(self, version: str) -> dict[str, str]:
        """What a deployment pointed at this server needs in its environment (Reapit's app credentials)."""
        if self.crm != "reapit":
            return {}
        return {
            "REAPIT_BASE_URL": self.base_url(version),
            "REAPIT_TOKEN_URL": self.token_url,
            "REAPIT_CLIENT_ID": REAPIT_CLIENT[0],
            "REAPIT_CLIENT_SECRET": REAPIT_CLIENT[1],
        }


@contextmanager
def fast_crm_process(crm: str, contacts: int, leads: int, versions: Sequence[str] = VERSIONS) -> Iterator[FastCrm]:
    """The server in a process of its own (its own GIL, as a CRM would be); yields when it serves."""
    argv = [sys.executable, "-m", "bench.fast_crm", "--crm", crm, "--contacts", str(contacts)]
    argv += ["--leads", str(leads), "--versions", ",".join(versions)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.fast_crm exited {process.wait()} before serving")
        yield FastCrm(crm, json.loads(line)["root_url"], process)
    finally:
        stop(process)


def bare_fetch(
    server: FastCrm,
    version: str,
    stream: str,
    size: int,
    keep: list[bytes] | None = None,
    parse: str = "json",
) -> tuple[int, int, float]:
    """Every page of one stream with a bare keep-alive httpx.Client, each decoded with `response.json()`
    (`parse="json"`, the standard library) or `orjson.loads` (`parse="orjson"`, as the engine decodes), or
    not decoded at all (`parse="bytes"`: the body is read and only its paging fields are picked from its
    tail, so the figure is what the server delivers through httpx, without the client's JSON work).

    Returns (records, requests, seconds), records 0 for "bytes"; each page's bytes are appended to `keep`
    when given. The token request (Reapit) is made before the clock starts.
    """
    import httpx
    import orjson

    def decode(answer: httpx.Response) -> Any:
        if parse == "bytes":
            return _paging_fields(answer.content)
        return orjson.loads(answer.content) if parse == "orjson" else answer.json()

    base = server.base_url(version)
    if server.crm == "openapi":
        headers = {"Authorization": f"Bearer {OPENAPI_TOKEN}", "Accept": "application/json"}
    else:
        answer = httpx.post(
            server.token_url,
            data={"grant_type": "client_credentials", "client_id": REAPIT_CLIENT[0]},
            auth=REAPIT_CLIENT,
        )
        answer.raise_for_status()
        headers = {
            "Authorization": f"Bearer {answer.json()['access_token']}",
            "api-version": API_VERSION,
            "reapit-customer": REAPIT_CUSTOMER,
            "Accept": "application/json",
        }
    records = requests = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        started = time.perf_counter()
        if server.crm == "openapi":
            path, params = f"/{stream}", {"limit": size}
            cursor: str | None = None
            while True:
                answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
                answer.raise_for_status()
                body = decode(answer)
                if keep is not None:
                    keep.append(answer.content)
                requests += 1
                records += len(body["data"])
                cursor = body["meta"]["next_cursor"]
                if not body["meta"]["has_more"]:
                    break
        else:
            path = "/contacts/" if stream == "contacts" else "/applicants/"
            number, pages = 1, 1
            while number <= pages:
                answer = client.get(path, params={"pageSize": size, "pageNumber": number, "sortBy": "modified"})
                answer.raise_for_status()
                body = decode(answer)
                if keep is not None:
                    keep.append(answer.content)
                requests += 1
                records += len(body["_embedded"])
                pages = body["totalPageCount"]
                number += 1
        seconds = time.perf_counter() - started
    return records, requests, seconds


_NEXT_CURSOR = re.compile(rb'"next_cursor":(?:null|"([^"]*)")')
_TOTAL_PAGES = re.compile(rb'"totalPageCount":(\d+)')


def _paging_fields(body: bytes) -> dict[str, Any]:
    """The fields `bare_fetch` pages by, from the tail of a page (both APIs put them after the records),
    shaped as the decoded page has them; the records themselves are left undecoded, as an empty list."""
    tail = body[-512:]
    if cursor := _NEXT_CURSOR.search(tail):
        found = cursor.group(1)
        meta = {"next_cursor": found.decode() if found else None, "has_more": b'"has_more":true' in tail}
        return {"data": [], "meta": meta}
    pages = _TOTAL_PAGES.search(tail)
    if pages is None:
        raise RuntimeError(f"no paging fields in the page's tail: {tail[-120:]!r}")
    return {"_embedded": [], "totalPageCount": int(pages.group(1))}


def raw_socket_fetch(server: FastCrm, version: str, stream: str, size: int) -> tuple[int, int, float]:
    """The server's own capacity: every page over one socket with a minimal client (no httpx, no JSON).

    Returns (bytes, requests, seconds). Beside the httpx figure it says how much of a bare client's time is
    the client's: what is left of a page's round trip here is the server's (and the loopback's).
    """
    host, port = server.root_url.split("//", 1)[1].split(":")
    prefix = f"/{server.crm}/{version}"
    if server.crm == "openapi":
        auth = f"Authorization: Bearer {OPENAPI_TOKEN}\r\n"
    else:
        auth = f"Authorization: Bearer {REAPIT_TOKEN}\r\napi-version: {API_VERSION}\r\n"
        auth += f"reapit-customer: {REAPIT_CUSTOMER}\r\n"
    received = requests = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        at, more = 0, True
        while more:
            if server.crm == "openapi":
                target = f"{prefix}/{stream}?limit={size}" + (f"&cursor=c{at}" if at else "")
            else:
                path = "contacts/" if stream == "contacts" else "applicants/"
                target = f"{prefix}/{path}?pageSize={size}&pageNumber={at + 1}&sortBy=modified"
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(1 << 20)
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            while len(body) < length:
                body += sock.recv(1 << 20)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{target}: {head[:40]!r}")
            requests += 1
            received += length
            if server.crm == "openapi":
                more = b'"has_more":true' in body[-80:]
                at += size
            else:
                more = b'"next":' in body[-400:]
                at += 1
        seconds = time.perf_counter() - started
    return received, requests, seconds


def proof(server: FastCrm, version: str = "r1") -> dict[str, Any]:
    """Bare-fetch figures for every pre-rendered page size: what a client with nothing else to do sees,
    and (`server_only`) what a minimal raw-socket client sees: the server's own rate."""
    out: dict[str, Any] = {}
    for size in PRESIZES[server.crm]:
        both(server, version, size, "json")  # warm-up: connections, caches, the first pass's page joins
        records, requests, seconds = best_of(PASSES, partial(both, server, version, size, "json"))
        _, _, orjson_seconds = best_of(PASSES, partial(both, server, version, size, "orjson"))
        _, bytes_requests, bytes_seconds = best_of(PASSES, partial(both, server, version, size, "bytes"))
        if bytes_requests != requests:
            raise RuntimeError(f"page size {size}: {bytes_requests} requests undecoded, {requests} decoded")
        raw_seconds = min(
            sum(raw_socket_fetch(server, version, stream, size)[2] for stream in ("contacts", "leads"))
            for _ in range(PASSES)
        )
        out[str(size)] = {
            "records": records,
            "requests": requests,
            "seconds": round(seconds, 3),
            "records_per_s": round(records / seconds, 1) if seconds else 0.0,
            "orjson_seconds": round(orjson_seconds, 3),
            "orjson_records_per_s": round(records / orjson_seconds, 1) if orjson_seconds else 0.0,
            # httpx alone: every body read, nothing decoded (what the server delivers to a bare httpx client)
            "bytes_seconds": round(bytes_seconds, 3),
            "bytes_records_per_s": round(records / bytes_seconds, 1) if bytes_seconds else 0.0,
            "server_only_seconds": round(raw_seconds, 3),
            "server_only_records_per_s": round(records / raw_seconds, 1) if raw_seconds else 0.0,
            # at most this share of the bare client's time is the server's (the rest is httpx and json)
            "server_share": round(raw_seconds / seconds, 3) if seconds else 0.0,
        }
    return out


PASSES = 3  # each figure is the best of this many passes, after one warm-up pass


def both(server: FastCrm, version: str, size: int, parse: str) -> tuple[int, int, float]:
    """Both streams, one after the other: (records, requests, seconds)."""
    parts = [bare_fetch(server, version, stream, size, parse=parse) for stream in ("contacts", "leads")]
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


def best_of(passes: int, measure: Callable[[], tuple[int, int, float]]) -> tuple[int, int, float]:
    return min((measure() for _ in range(passes)), key=lambda result: result[2])


# Records/s the server must deliver to a bare httpx client (issue 12), at every page size clients use. The
# figure is the undecoded one: decoding is the client's own work (~0.3 ms per 100 records with json here),
# and what the proof must show is that the server is not the bottleneck; the decoded figures stand beside it.
PROOF_TARGET = 150_000


def proof_met(figures: dict[str, Any]) -> bool:
    """Results written before the undecoded pass existed have no figure for it, and so do not meet it."""
    return all(figure.get("bytes_records_per_s", 0) >= PROOF_TARGET for figure in figures.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=("openapi", "reapit"), default="openapi")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--versions", default=",".join(VERSIONS), help="dataset versions to render")
    parser.add_argument(
        "--proof", action="store_true", help="start a server process, bare-fetch every page at each size, stop"
    )
    args = parser.parse_args(argv)
    versions = [v for v in args.versions.split(",") if v]
    if unknown := set(versions) - set(VERSIONS):
        parser.error(f"unknown versions {sorted(unknown)}: choose from {','.join(VERSIONS)}")
    if args.proof:
        with fast_crm_process(args.crm, args.contacts, args.leads, ["r1"]) as server:
            print(json.dumps({"root_url": server.root_url, "base_url": server.base_url("r1")}), flush=True)
            figures = proof(server)
        for size, figure in figures.items():
            print(
                f"{args.crm} page size {size}: {figure['records']:,} records in {figure['requests']:,} requests, "
                f"{figure['seconds']} s = {figure['records_per_s']:,.0f} records/s (bare httpx.Client + json), "
                f"{figure['orjson_records_per_s']:,.0f} with orjson, {figure['bytes_records_per_s']:,.0f} undecoded; "
                f"server only (raw socket, no parse) {figure['server_only_records_per_s']:,.0f} records/s, "
                f"so at most {figure['server_share']:.0%} of the bare client's time is the server's",
                flush=True,
            )
        verdict = proof_met(figures)
        answer = "met" if verdict else "MISSED"
        print(f"{answer}: >= {PROOF_TARGET:,} records/s undecoded at every page size", flush=True)
        return 0 if verdict else 1

    started = time.perf_counter()
    dataset = Dataset(args.crm, args.contacts, args.leads, versions)
    rendered = time.perf_counter() - started

    def ready(port: int) -> None:
        root = f"http://{args.host}:{port}"
        info: dict[str, Any] = {"root_url": root, "crm": args.crm, "versions": versions}
        info["base_urls"] = {v: f"{root}/{args.crm}/{v}" for v in versions}
        info["render_seconds"] = round(rendered, 2)
        if args.crm == "openapi":
            info["token"] = OPENAPI_TOKEN
        else:
            info["token_url"] = f"{root}/reapit/token"
            info["client_id"], info["customer_id"] = REAPIT_CLIENT[0], REAPIT_CUSTOMER
        print(json.dumps(info), flush=True)

    serve(dataset, args.host, args.port, ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
