"""The Starlette app behind `nurturehub serve`: the integrations page, its JSON API and sign-in."""

from __future__ import annotations

import gc
import logging
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurturehub_pipelines import settings
from nurturehub_pipelines.store import db
from nurturehub_pipelines.web import auth, routes_api, routes_page

LOG = logging.getLogger(__name__)
SECURITY_HEADERS = {
    # Scripts, styles and images come from this server only: no inline script, no CDN.
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
ERROR_TITLES = {
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    422: "Not understood",
}


class SecurityHeaders:
    """Adds the headers above to every answer, and no-store to everything but static files.

    It also answers an unhandled exception itself, with a plain 500 that carries the headers (Starlette's
    own 500 comes from ServerErrorMiddleware, which sits outside every user middleware), and logs it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise  # half an answer is out: the server can only drop the connection
            # Logged here, not raised on: the server would drop the connection after the answer.
            LOG.exception("unhandled exception answering %s %s", scope["method"], scope["path"])
            await internal_error(scope["path"])(scope, receive, send_with_headers)


def internal_error(path: str) -> Response:
    """What a caller sees of a bug: no traceback, no detail that could carry data."""
    if path.startswith("/api/"):
        return JSONResponse({"detail": "Internal error: it has been logged."}, status_code=500)
    return PlainTextResponse("NurtureHub hit an internal error. It has been logged: try again shortly.", 500)


class CloseUnreadBodies:
    """`Connection: close` on an answer given before the request's body was read (a refusal, a 413).

    Otherwise the server would go on receiving, and discarding, the rest of a body nobody asked for, to
    keep the connection alive: an anonymous 40 MB upload would still cost 40 MB of traffic.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        pending = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers

        async def tracking_receive() -> Message:
            nonlocal pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                pending = False
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, tracking_receive, closing_send)


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON under /api; for the page, a redirect to sign-in (401) or a short page saying what happened."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 401:
        target = request.url.path if request.method == "GET" else settings.PAGE_PATH
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
    context = {
        "title": ERROR_TITLES.get(exc.status_code, "Something went wrong"),
        "detail": exc.detail,
        "user": None,
        "csrf": None,
    }
    return routes_page.templates.TemplateResponse(
        request, "error.html", context, status_code=exc.status_code, headers=exc.headers
    )


def build_app(database_url: str | None = None) -> Starlette:
    """The app on `database_url` (default: NURTUREHUB_DATABASE_URL); the schema must be migrated already."""
    app = Starlette(
        routes=[
            *routes_api.routes,
            *routes_page.routes,
            Mount("/static", StaticFiles(directory=str(routes_page.STATIC)), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(CloseUnreadBodies),
            Middleware(
                SessionMiddleware,
                secret_key=auth.session_secret(),
                session_cookie=auth.SESSION_COOKIE,
                max_age=auth.SESSION_MAX_AGE,
                same_site="lax",
                https_only=settings.AlertSettings.from_env().base_url.startswith("https://"),
            ),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.engine = db.engine(database_url)
    app.state.read_engine = db.read_engine(database_url)
    return app


# How `nurturehub serve` runs uvicorn; the read-model bench and the tests' live server use the same settings,
# so what they measure and exercise is what users run. httptools (llhttp, in C) instead of h11's pure-Python
# parser, and uvloop's event loop: ~0.2 ms less server CPU per request (0.9 -> 0.7 ms for a 401; the cards'
# own work is unchanged). Both are declared dependencies; "auto" would fall back silently, so they are named.
SERVER_OPTIONS: dict[str, Any] = {"http": "httptools", "loop": "uvloop", "server_header": False}


def serve(host: str, port: int) -> None:
    """`nurturehub serve`: migrate the app database if needed, then serve until interrupted.

    Everything alive once the app is built (Dagster's and SQLAlchemy's modules: ~160,000 objects, as the
    app imports the CRM registry) is frozen out of the garbage collector's reach: a full collection would
    otherwise walk them all, a 100-200 ms pause for whichever request triggers it. They live as long as the
    process anyway, so nothing is kept that would have been freed.
    """
    import uvicorn

    db.upgrade()
    app = build_app()
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="info", **SERVER_OPTIONS)
