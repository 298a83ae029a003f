"""The integrations page (server-rendered, so it reads and works without JavaScript) and sign-in.

Forms POST to page routes that answer with POST-redirect-GET and a one-time notice in the session; the
page's script sends Sync Now and Retry to the JSON API instead and refreshes the cards from a partial.
Pause/Resume and Reconnect stay plain form posts, with or without the script: their answer is a new page.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from nurturehub_pipelines import read_model
from nurturehub_pipelines.read_model import Card, IntegrationRef, LogEvent
from nurturehub_pipelines.settings import PAGE_PATH
from nurturehub_pipelines.store.integration_changes import IntegrationChange
from nurturehub_pipelines.web import auth, changes
from nurturehub_pipelines.web.actions import request_sync
from nurturehub_pipelines.web.auth import engine_of
from nurturehub_pipelines.web.changes import FormField
from nurturehub_pipelines.web.routes_api import requested_sync

BADGE_LABELS = {"green": "Healthy", "amber": "Warnings", "red": "Action needed", "pending": "Not synced yet"}
EVENT_LABELS = {
    "auth_refresh": "Authentication",
    "contact_import": "Contact import",
    "lead_update": "Lead update",
    "sync_finished": "Sync",
    "sync_requested": "Sync request",
}
NOTICE_KINDS = {202: "ok", 409: "info", 429: "error"}
# The flash rides in the signed session cookie, which a browser drops past ~4 KB: a name written by
# another tool can be 5,000 characters, so a notice names at most the start of it, within a JSON budget.
FLASH_NAME_CHARS = 60
FLASH_JSON_BYTES = 600


def utc_text(value: datetime) -> str:
    """What a reader without JavaScript sees; the script rewrites it in the viewer's own time zone."""
    return f"{value.day} {value:%b %Y, %H:%M} UTC"


STATIC = Path(__file__).with_name("static")
# A content hash in every static URL: a new release's CSS or JS is never served from an old cache.
STATIC_VERSION = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(STATIC.iterdir()))).hexdigest()[:10]


def static(name: str) -> str:
    """A root-relative URL (right behind any proxy, unlike an absolute url_for)."""
    return f"/static/{name}?v={STATIC_VERSION}"


templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.filters["iso"] = read_model.iso
templates.env.filters["utc_text"] = utc_text
templates.env.globals.update(badge_labels=BADGE_LABELS, event_labels=EVENT_LABELS, static=static)


@dataclass(frozen=True)
class CardView:
    card: Card
    events: list[LogEvent]
    flash: dict[str, str] | None
    reconnect: list[FormField] | None  # the reconnect form's inputs, for CRMs with per-integration credentials

    @property
    def credential_choices(self) -> str:
        return changes.credential_choices(self.card.crm)


def _cards_context(request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    principal = auth.require_manager(engine, request)
    flash = request.session.pop("flash", None)
    with engine.connect() as conn:
        cards = read_model.cards(conn, principal.user.org_id)
        settings = changes.stored_settings(conn, principal.user.org_id)
        items = [
            CardView(
                card,
                read_model.log_events(conn, card.id),
                flash if flash and flash.get("id") == card.id else None,
                changes.form_fields(card.crm, settings.get(card.id, {})) if changes.reconnectable(card.crm) else None,
            )
            for card in cards
        ]
    return {"user": principal.user, "csrf": auth.csrf_token(request), "items": items}


def page(request: Request) -> Response:
    return templates.TemplateResponse(request, "integrations.html", _cards_context(request))


def cards_partial(request: Request) -> Response:
    """The cards alone, for the page's script to swap in every few seconds."""
    return templates.TemplateResponse(request, "_cards.html", _cards_context(request))


def short_text(text: str, name: str | None = None) -> str:
    """`text` fit for the cookie: `name` in it cut to its first characters, and the whole within budget."""
    if name and len(name) > FLASH_NAME_CHARS:
        text = text.replace(name, name[: FLASH_NAME_CHARS - 1] + "…")
    while len(json.dumps(text)) > FLASH_JSON_BYTES:  # json.dumps: as the session cookie encodes it
        text = text[: len(text) * 3 // 4].rstrip("…") + "…"
    return text


def set_flash(request: Request, ref: IntegrationRef, kind: str, text: str) -> None:
    """A one-time notice for the card, shown by the next page load (POST-redirect-GET)."""
    request.session["flash"] = {"id": ref.id, "kind": kind, "text": short_text(text, ref.display_name)}


async def page_sync(request: Request) -> Response:
    """Sync Now / Retry from a plain form: do it, keep a notice for the card, redirect back (PRG)."""
    principal, _form = await auth.manager_form(request)
    ref, answer = await run_in_threadpool(requested_sync, request, principal)
    set_flash(request, ref, NOTICE_KINDS[answer.status], answer.message)
    return RedirectResponse(f"{PAGE_PATH}#integration-{ref.id}", status_code=303)


def _back_to(request: Request, ref: IntegrationRef, kind: str, text: str) -> Response:
    """POST-redirect-GET: the notice waits in the session for the card, shown once."""
    set_flash(request, ref, kind, text)
    return RedirectResponse(f"{PAGE_PATH}#integration-{ref.id}", status_code=303)


async def _checked_form(request: Request) -> tuple[auth.Principal, IntegrationRef, dict[str, str]]:
    """Who (401 before any of the body is read, 403 for a member), the form and its CSRF token, then which (404)."""
    principal, form = await auth.manager_form(request)
    ref = await run_in_threadpool(auth.require_integration, engine_of(request), principal, request.path_params["id"])
    return principal, ref, {key: value for key, value in form.multi_items() if isinstance(value, str)}


def _set_enabled(engine: Engine, ref: IntegrationRef, enabled: bool, actor: str) -> tuple[str, str]:
    """Pause or resume, and the notice: a resume that the rejected-credentials hold outlasts says so."""
    changes.apply(engine, ref.id, IntegrationChange(enabled=enabled), actor)
    name = ref.display_name
    if enabled == ref.enabled:
        return "info", f"{name} was already {'running on its schedule' if enabled else 'paused'}."
    if not enabled:
        return "ok", f"Paused {name}."
    with engine.connect() as conn:
        after = read_model.integration_ref(conn, ref.id)
    if after is not None and after.paused_reason:  # the rejected-credentials rule still holds the schedule
        return "info", f"Resumed, but {after.paused_reason[:1].lower()}{after.paused_reason[1:]}."
    return "ok", f"Resumed: {name} syncs on its schedule again."


async def page_pause(request: Request) -> Response:
    """Pause (…/pause) or Resume (…/resume) an integration's scheduled syncs, from a plain form."""
    principal, ref, _form_fields = await _checked_form(request)
    enabled = request.url.path.endswith("/resume")
    kind, text = await run_in_threadpool(_set_enabled, engine_of(request), ref, enabled, principal.user.email)
    return _back_to(request, ref, kind, text)


def _reconnect(engine: Engine, ref: IntegrationRef, form: dict[str, str], actor: str) -> tuple[str, str]:
    """Store the new credentials, then ask for a Sync Now so the card shows whether they work."""
    with engine.connect() as conn:
        current = changes.stored_settings(conn, ref.org_id).get(ref.id, {})
    try:
        changes.apply(engine, ref.id, changes.reconnect_change(ref.crm, current, form), actor)
    except changes.ChangeRefused as refused:
        return "error", f"Not reconnected, nothing was changed: {refused.reasons}."
    answer = request_sync(engine, ref, actor, "sync_now")
    if answer.status == 202:
        return "ok", "Reconnected — syncing now."
    if answer.status == 409:
        return "info", "Reconnected. A sync was already queued or running: use Sync Now when it finishes."
    return "info", f"Reconnected. {answer.message}."


async def page_reconnect(request: Request) -> Response:
    """The reconnect form: new credentials (and settings) for CRMs that have per-integration ones."""
    principal, ref, form = await _checked_form(request)
    if not changes.reconnectable(ref.crm):
        raise HTTPException(404, f"{ref.crm_name} signs in with NurtureHub's own credentials: nothing to reconnect.")
    kind, text = await run_in_threadpool(_reconnect, engine_of(request), ref, form, principal.user.email)
    return _back_to(request, ref, kind, text)


def signin_form(request: Request) -> Response:
    return _signin_page(request, None, 200)


def _signin_page(request: Request, error: str | None, status: int) -> Response:
    context = {
        "csrf": None,  # sign-in is guarded by its Origin instead: there is no session to hold a token yet
        "next": auth.safe_next(request.query_params.get("next"), PAGE_PATH),
        "error": error,
        "user": None,
    }
    return templates.TemplateResponse(request, "signin.html", context, status_code=status)


async def signin(request: Request) -> Response:
    """Exchange a token for a session. A cross-site POST (its Origin says so) is refused: login CSRF.

    The one POST read before authentication, since its body is the credential: so it is capped smaller.
    """
    if not auth.same_origin(request):
        return _signin_page(request, "This sign-in did not come from NurtureHub. Try again here.", 403)
    form = await auth.read_form(request, auth.MAX_SIGNIN_BYTES)
    token, target = form.get("token"), form.get("next")
    user = await run_in_threadpool(auth.sign_in, engine_of(request), request, token if isinstance(token, str) else "")
    if user is None:
        return _signin_page(request, "That token was not recognised. Check it and try again.", 401)
    return RedirectResponse(auth.safe_next(target if isinstance(target, str) else None, PAGE_PATH), status_code=303)


async def signout(request: Request) -> Response:
    """End the session server-side: its saved cookie is refused from now on, like no cookie at all.

    Anyone signed in may sign out (members too); without a session there is nothing to end or to read.
    """
    engine = engine_of(request)
    principal = await run_in_threadpool(auth.authenticate, engine, request)
    if principal is not None:
        form = await auth.read_form(request)
        submitted = form.get(auth.CSRF_FIELD)
        auth.require_csrf(request, principal, submitted if isinstance(submitted, str) else None)
    await run_in_threadpool(auth.sign_out, engine, request)
    return RedirectResponse("/signin", status_code=303)


def home(_request: Request) -> Response:
    return RedirectResponse(PAGE_PATH, status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route(PAGE_PATH, page, methods=["GET"]),
    Route(f"{PAGE_PATH}/cards", cards_partial, methods=["GET"]),
    Route(PAGE_PATH + "/{id}/sync", page_sync, methods=["POST"]),
    Route(PAGE_PATH + "/{id}/errors/{log_id}/retry", page_sync, methods=["POST"]),
    Route(PAGE_PATH + "/{id}/pause", page_pause, methods=["POST"]),
    Route(PAGE_PATH + "/{id}/resume", page_pause, methods=["POST"]),
    Route(PAGE_PATH + "/{id}/reconnect", page_reconnect, methods=["POST"]),
    Route("/signin", signin_form, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
]
