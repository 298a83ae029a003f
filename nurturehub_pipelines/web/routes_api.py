"""The JSON API (DESIGN.md, HTTP API): cards, the log, Sync Now, Retry, changes, and their OpenAPI description.

Handlers that touch the database are plain functions: Starlette runs those in its thread pool, so a
slow query never blocks the event loop. Refusals are raised as HTTPException and rendered as JSON by the
app's handler for every /api path.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import Card, IntegrationRef
from nurturehub_pipelines.store.tables import utcnow
from nurturehub_pipelines.web import auth, changes
from nurturehub_pipelines.web.actions import SyncAnswer, request_sync
from nurturehub_pipelines.web.openapi import openapi_document


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def list_integrations(request: Request) -> Response:
    engine = engine_of(request)
    principal = auth.require_manager(engine, request)
    with engine.connect() as conn:
        cards = read_model.cards(conn, principal.user.org_id)
    return JSONResponse({"integrations": [card.to_json() for card in cards]})


def parse_limit(raw: str | None) -> int:
    """Default 100; above 100 is clamped; below 1 or not an integer is 422."""
    if raw is None:
        return read_model.LOG_LIMIT
    if not re.fullmatch(r"\s*[+-]?[0-9]{1,19}\s*", raw) or int(raw) < 1:
        raise HTTPException(422, "limit must be an integer of 1 or more (at most 100 events are returned).")
    return min(int(raw), read_model.LOG_LIMIT)


def integration_log(request: Request) -> Response:
    engine = engine_of(request)
    principal = auth.require_manager(engine, request)
    ref = auth.require_integration(engine, principal, request.path_params["id"])
    limit = parse_limit(request.query_params.get("limit"))
    with engine.connect() as conn:
        events = read_model.log_events(conn, ref.id, limit)
    return JSONResponse({"events": [event.to_json() for event in events]})


async def submitted_csrf(request: Request) -> str | None:
    """A CSRF token sent as a form field (the header is read by auth.csrf_ok)."""
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(auth.CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def checked_request(request: Request, submitted: str | None) -> tuple[IntegrationRef, SyncAnswer]:
    """Access checks, CSRF, the Retry's error row, then the request itself: shared by the API and the page."""
    engine = engine_of(request)
    principal = auth.require_manager(engine, request)
    auth.require_csrf(request, principal, submitted)
    ref = auth.require_integration(engine, principal, request.path_params["id"])
    trigger = "sync_now"
    if "log_id" in request.path_params:
        trigger = "retry"
        log_id = auth.parse_id(request.path_params["log_id"])
        with engine.connect() as conn:
            error = read_model.error_event(conn, ref.id, log_id) if log_id else None
        if error is None:
            raise HTTPException(404, "That log entry is not an error of this integration.")
    return ref, request_sync(engine, ref, principal.user.email, trigger)


async def sync(request: Request) -> Response:
    """Sync Now, and Retry (its route has a log_id): 202, 409 or 429 as DESIGN.md gives them."""
    submitted = await submitted_csrf(request)
    _ref, answer = await run_in_threadpool(checked_request, request, submitted)
    if answer.status == 202:
        return JSONResponse({"request_id": answer.request_id}, status_code=202)
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
    return JSONResponse({"detail": answer.message}, status_code=answer.status, headers=headers)


async def capped_body(request: Request, limit: int = changes.MAX_BODY) -> bytes:
    """The body, read only once the access checks have passed; past `limit` it is refused (413), unread."""
    declared = request.headers.get("content-length", "")
    too_large = HTTPException(413, f"The request body is larger than {limit // 1024} KiB.")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def fresh_card(engine: Engine, integration_id: int) -> Card:
    with engine.connect() as conn:
        ref = read_model.integration_ref(conn, integration_id)
        assert ref is not None  # the caller has just found it
        return read_model.card(conn, ref, utcnow())


async def change_integration(request: Request) -> Response:
    """PATCH: the access checks and CSRF, only then the body; the whole change or nothing (422); 200 with the card."""
    engine = engine_of(request)
    principal = await run_in_threadpool(auth.require_manager, engine, request)
    auth.require_csrf(request, principal, None)  # a cookie session sends its token as X-CSRF-Token
    ref = await run_in_threadpool(auth.require_integration, engine, principal, request.path_params["id"])
    body = await capped_body(request)
    try:
        change = changes.parse_patch(body)
        await run_in_threadpool(changes.apply, engine, ref.id, change, principal.user.email)
    except changes.ChangeRefused as refused:
        return JSONResponse(refused.to_json(), status_code=422)
    card = await run_in_threadpool(fresh_card, engine, ref.id)
    return JSONResponse(card.to_json())


def openapi(_request: Request) -> Response:
    return JSONResponse(openapi_document())


routes = [
    Route("/api/openapi.json", openapi, methods=["GET"]),
    Route("/api/integrations", list_integrations, methods=["GET"]),
    Route("/api/integrations/{id}", change_integration, methods=["PATCH"]),
    Route("/api/integrations/{id}/log", integration_log, methods=["GET"]),
    Route("/api/integrations/{id}/sync", sync, methods=["POST"]),
    Route("/api/integrations/{id}/errors/{log_id}/retry", sync, methods=["POST"]),
]
