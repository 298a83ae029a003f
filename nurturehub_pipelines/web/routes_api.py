"""The JSON API (DESIGN.md, HTTP API): cards, the log, Sync Now, Retry, changes, and their OpenAPI description.

Handlers that touch the database are plain functions: Starlette runs those in its thread pool, so a
slow query never blocks the event loop. (Running the GETs' few index reads inline on the loop instead was
measured: it saved ~0.1 ms of a request over HTTP, within the noise, and would let one stalled database
connection freeze every other request, static files and sign-in included; so the hop stays.) The GETs
read on one connection of the read engine, authentication included (`auth.manager_read`). Refusals
are raised as HTTPException and rendered as JSON by the app's handler for every /api path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
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
from nurturehub_pipelines.web.auth import engine_of
from nurturehub_pipelines.web.openapi import openapi_document


class ListingResponse(JSONResponse):
    """The cards and the log, written by orjson: the bytes of Starlette's `json.dumps` (compact, UTF-8 as is;
    checked over every code point by the tests) in a tenth of its time (~0.5 ms of an organisation of 100's
    page). Their values are strings, integers, booleans and nulls only; anything orjson would write its own
    way or refuse (an integer past 64 bits) takes the standard library's path."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def list_integrations(request: Request) -> Response:
    cards = auth.manager_read(request, lambda principal, conn: read_model.cards(conn, principal.user.org_id))
    return ListingResponse({"integrations": [card.to_json() for card in cards]})


def parse_limit(raw: str | None) -> int:
    """Default 100; any integer above 100 is clamped, however many digits; below 1 or not an integer is 422.

    The digits are counted, not converted: int() of a few thousand digits is slow, and refused past 4,300.
    """
    if raw is None:
        return read_model.LOG_LIMIT
    match = re.fullmatch(r"\s*([+-]?)([0-9]+)\s*", raw)
    if match is None:
        raise HTTPException(422, "limit must be an integer of 1 or more (at most 100 events are returned).")
    sign, digits = match.group(1), match.group(2).lstrip("0")
    value = read_model.LOG_LIMIT + 1 if len(digits) > 6 else int(digits or "0")
    if sign == "-" or value < 1:
        raise HTTPException(422, "limit must be an integer of 1 or more (at most 100 events are returned).")
    return min(value, read_model.LOG_LIMIT)


def integration_log(request: Request) -> Response:
    def read(principal: auth.Principal, conn: Connection) -> list[read_model.LogEvent]:
        ref = auth.require_integration_on(conn, principal, request.path_params["id"])
        return read_model.log_events(conn, ref.id, parse_limit(request.query_params.get("limit")))

    events = auth.manager_read(request, read)
    return ListingResponse({"events": [event.to_json() for event in events]})


def requested_sync(request: Request, principal: auth.Principal) -> tuple[IntegrationRef, SyncAnswer]:
    """Step 3 of the access checks, the Retry's error row, then the request itself: for the API and the page.

    Steps 1 and 2 and the CSRF check come first, from auth.manager_form, before the body is read.
    """
    engine = engine_of(request)
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
    principal, _form = await auth.manager_form(request)
    _ref, answer = await run_in_threadpool(requested_sync, request, principal)
    if answer.status == 202:
        return JSONResponse({"request_id": answer.request_id}, status_code=202)
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
    return JSONResponse({"detail": answer.message}, status_code=answer.status, headers=headers)


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
    body = await auth.bounded(request).body()
    try:
        change = changes.parse_patch(body)
        await run_in_threadpool(changes.apply, engine, ref.id, change, principal.user.email)
    except changes.ChangeRefused as refused:
        return JSONResponse(refused.to_json(), status_code=422)
    card = await run_in_threadpool(fresh_card, engine, ref.id)
    return JSONResponse(card.to_json())


def openapi(request: Request) -> Response:
    """Behind credentials like every route (DESIGN.md): it maps the API for whoever may use it."""
    auth.require_manager(engine_of(request), request)
    return JSONResponse(openapi_document())


routes = [
    Route("/api/openapi.json", openapi, methods=["GET"]),
    Route("/api/integrations", list_integrations, methods=["GET"]),
    Route("/api/integrations/{id}", change_integration, methods=["PATCH"]),
    Route("/api/integrations/{id}/log", integration_log, methods=["GET"]),
    Route("/api/integrations/{id}/sync", sync, methods=["POST"]),
    Route("/api/integrations/{id}/errors/{log_id}/retry", sync, methods=["POST"]),
]
