"""Who is asking, and may they: bearer tokens, server-side sessions, roles, CSRF, and bounded bodies.

Access checks run in the order DESIGN.md fixes: authentication (401), role (403 for a member), then the
organisation (404, in the routes). Credentials are checked before any byte of a request body is read,
and a body is read only up to a cap: `manager_form` / `manager_json` are the one way a POST or PATCH
handler gets its body. A cookie session needs a CSRF token on every POST; a bearer token does not,
because a browser never attaches one on its own.

A browser session is a `web_sessions` row (store/sessions.py). The signed cookie carries its random key,
the CSRF token, and a fingerprint of the token it was opened with; who the caller is comes from the row,
so signing out, rotating a token or removing a user refuses the old cookie at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from nurturehub_pipelines import settings
from nurturehub_pipelines.read_model import IntegrationRef, integration_ref
from nurturehub_pipelines.store import sessions
from nurturehub_pipelines.store.accounts import User, user_for_token
from nurturehub_pipelines.store.secrets import hash_token
from nurturehub_pipelines.store.tables import users, utcnow

SESSION_COOKIE = "nurturehub_session"
SESSION_MAX_AGE = 12 * 60 * 60  # a session lasts 12 hours from sign-in, whatever is done with it
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MANAGER_ROLES = ("owner", "admin")
MAX_BODY_BYTES = 64 * 1024  # every form and JSON body of this app is a few hundred bytes
MAX_SIGNIN_BYTES = 8 * 1024  # a token and a `next` path
T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    user: User
    via: Literal["bearer", "session"]

    @property
    def may_manage(self) -> bool:
        return self.user.role in MANAGER_ROLES


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def session_secret() -> str:
    """A key of its own for sessions, derived from NURTUREHUB_SECRET_KEY (which also encrypts credentials)."""
    return hmac.new(settings.secret_key(), b"nurturehub-session-signing", hashlib.sha256).hexdigest()


def _fingerprint(token_hash: str) -> str:
    """Ties a session to the token it was opened with (a token changed by any writer ends it); not the hash."""
    return hmac.new(session_secret().encode(), token_hash.encode(), hashlib.sha256).hexdigest()[:32]


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _same(a: str, b: str) -> bool:
    """A constant-time comparison of any two strings: compare_digest on str refuses non-ASCII."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


Presented = tuple[Literal["bearer", "session"], str, str]


def _presented(request: Request) -> Presented | None:
    """What the request offers, read from its headers and signed cookie alone: ("bearer", token, "") or
    ("session", key, fingerprint); None when there is nothing to look up, so an anonymous request costs no query."""
    if "authorization" in request.headers:
        token = _bearer_token(request)
        return ("bearer", token, "") if token else None
    key, fingerprint = request.session.get("sid"), request.session.get("fp")
    if not isinstance(key, str) or not isinstance(fingerprint, str):
        return None
    return ("session", key, fingerprint)


def authenticate(engine: Engine, request: Request) -> Principal | None:
    """The caller, from a bearer token if one is sent (it then decides alone), else from the session."""
    presented = _presented(request)
    if presented is None:
        return None
    with engine.connect() as conn:
        return _principal(conn, request, presented)


def _principal(conn: Connection, request: Request, presented: Presented) -> Principal | None:
    via, key, fingerprint = presented
    if via == "bearer":
        user = user_for_token(conn, key)
        return Principal(user, "bearer") if user else None
    user_id = sessions.session_user(conn, key, utcnow())
    row = None
    if user_id is not None:
        row = conn.execute(
            select(users.c.id, users.c.org_id, users.c.email, users.c.role, users.c.token_hash).where(
                users.c.id == user_id
            )
        ).first()
    if row is None or not _same(_fingerprint(row.token_hash), fingerprint):
        request.session.clear()  # ended, expired or its user gone: the browser drops the cookie too
        return None
    return Principal(User(row.id, row.org_id, row.email, row.role), "session")


def sign_in(engine: Engine, request: Request, token: str) -> User | None:
    """Open a session for the token's user, ending this browser's previous one; a fresh CSRF token too."""
    token = token.strip()
    previous = request.session.get("sid")
    request.session.clear()
    now = utcnow()
    with engine.begin() as conn:
        if isinstance(previous, str):
            sessions.end_session(conn, previous)
        user = user_for_token(conn, token) if token else None
        if user is None:
            return None
        sessions.prune_expired(conn, now)
        key = sessions.open_session(conn, user.id, now, timedelta(seconds=SESSION_MAX_AGE))
    request.session.update(sid=key, fp=_fingerprint(hash_token(token)), csrf=secrets.token_urlsafe(32))
    return user


def sign_out(engine: Engine, request: Request) -> None:
    """End the session server-side (its row goes), then forget the cookie."""
    key = request.session.get("sid")
    if isinstance(key, str):
        with engine.begin() as conn:
            sessions.end_session(conn, key)
    request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token (sign_in sets a fresh one; this covers sessions that lack it)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, principal: Principal, submitted: str | None) -> bool:
    """Bearer callers need no token; a cookie session must echo its own (header or form field)."""
    if principal.via == "bearer":
        return True
    submitted = submitted or request.headers.get(CSRF_HEADER)
    expected = request.session.get("csrf")
    return bool(submitted and isinstance(expected, str) and _same(submitted, expected))


def same_origin(request: Request) -> bool:
    """For the sign-in POST: a browser sends Origin (or Referer) on a cross-site form; refuse those.

    Our own origin is the Host the request came to, or NURTUREHUB_BASE_URL's (behind a proxy).
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True  # not a browser's cross-site form: those always say where they come from
    ours = {
        request.headers.get("host", request.url.netloc),
        urlsplit(settings.AlertSettings.from_env().base_url).netloc,
    }
    return urlsplit(source).netloc in ours


def safe_next(target: str | None, default: str) -> str:
    """Only a local path may be a redirect target after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def require_manager(engine: Engine, request: Request) -> Principal:
    """Steps 1 and 2 of the access checks: 401 without valid credentials, 403 for a member."""
    return _manager(authenticate(engine, request))


def _manager(principal: Principal | None) -> Principal:
    if principal is None:
        raise HTTPException(401, "Sign in first: send Authorization: Bearer <token>.", {"WWW-Authenticate": "Bearer"})
    if not principal.may_manage:
        raise HTTPException(403, "Only the organisation's owner and admins can manage integrations.")
    return principal


def manager_read(request: Request, read: Callable[[Principal, Connection], T]) -> T:
    """Steps 1 and 2, then `read(principal, conn)`, all on one connection of the app's read engine.

    For read-only routes (GETs): one pool checkout and no transaction (`db.read_engine`) for authentication
    and the reads together, where `require_manager` and a second checkout cost PostgreSQL two pings, two
    BEGINs and two ROLLBACKs. The read engine does not ping a connection before lending it (a round trip per
    request); instead a read whose connection turns out dead (the database restarted: SQLAlchemy then
    discards every pooled connection) runs once more on a new one. Reads are idempotent, so that is safe.
    An anonymous request reads nothing.
    """
    presented = _presented(request)
    if presented is None:
        _manager(None)
    engine: Engine = request.app.state.read_engine
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                principal = _manager(_principal(conn, request, presented) if presented else None)
                return read(principal, conn)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def require_csrf(request: Request, principal: Principal, submitted: str | None) -> None:
    if not csrf_ok(request, principal, submitted):
        raise HTTPException(403, "This form has expired or did not come from NurtureHub: reload and try again.")


def require_integration(engine: Engine, principal: Principal, raw_id: str) -> IntegrationRef:
    """Step 3: an integration of another organisation, or none at all, is 404 (the two look the same)."""
    if parse_id(raw_id, 2**31 - 1) is None:
        raise HTTPException(404, "No such integration.")
    with engine.connect() as conn:
        return require_integration_on(conn, principal, raw_id)


def require_integration_on(conn: Connection, principal: Principal, raw_id: str) -> IntegrationRef:
    """`require_integration` on a connection the request already holds."""
    ref, integration_id = None, parse_id(raw_id, 2**31 - 1)
    if integration_id is not None:
        ref = integration_ref(conn, integration_id)
    if ref is None or ref.org_id != principal.user.org_id:
        raise HTTPException(404, "No such integration.")
    return ref


def parse_id(raw: str, largest: int = 2**63 - 1) -> int | None:
    """A path id as the database can take it: ASCII digits within the column's range, else None (404)."""
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        return None
    value = int(raw)
    return value if 0 < value <= largest else None


# Bodies: read only after the access checks, and never more than a cap.


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is larger than this route accepts ({limit // 1024} KiB).")


def bounded(request: Request, limit: int = MAX_BODY_BYTES) -> Request:
    """The request with a body that stops at `limit` bytes: 413 on a larger Content-Length before a byte is
    read, or as soon as a chunked body passes the cap (the rest is never read; the connection is closed)."""
    length = request.headers.get("content-length")
    if length is not None and (not re.fullmatch(r"[0-9]{1,15}", length) or int(length) > limit):
        raise _too_large(limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, receive)


async def read_form(request: Request, limit: int = MAX_BODY_BYTES) -> FormData:
    """A form body of at most `limit` bytes (an empty form for any other content type)."""
    return await bounded(request, limit).form(max_files=0, max_fields=50, max_part_size=limit)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """A JSON object of at most `limit` bytes; anything else is 422."""
    body = await bounded(request, limit).body()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise HTTPException(422, "The body must be a JSON object.")
    return value


async def manager(request: Request) -> Principal:
    """Steps 1 and 2 (401, 403) from the headers alone, off the event loop."""
    return await run_in_threadpool(require_manager, engine_of(request), request)


async def manager_form(request: Request) -> tuple[Principal, FormData]:
    """For a form POST: credentials and role first, then the bounded form, then its CSRF token."""
    principal = await manager(request)
    form = await read_form(request)
    submitted = form.get(CSRF_FIELD)
    require_csrf(request, principal, submitted if isinstance(submitted, str) else None)
    return principal, form


async def manager_json(request: Request) -> tuple[Principal, dict[str, Any]]:
    """For a JSON POST or PATCH: credentials, role and the CSRF header first, then the bounded object."""
    principal = await manager(request)
    require_csrf(request, principal, None)
    return principal, await read_json(request)
