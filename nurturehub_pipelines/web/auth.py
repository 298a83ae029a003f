"""Who is asking, and may they: bearer tokens, signed session cookies, roles and CSRF.

Access checks run in the order DESIGN.md fixes: authentication (401), role (403 for a member), then the
organisation (404, in the routes). A cookie session needs a CSRF token on every POST; a bearer token does
not, because a browser never attaches one on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from nurturehub_pipelines import settings
from nurturehub_pipelines.read_model import IntegrationRef, integration_ref
from nurturehub_pipelines.store.accounts import User, user_for_token
from nurturehub_pipelines.store.secrets import hash_token
from nurturehub_pipelines.store.tables import users

SESSION_COOKIE = "nurturehub_session"
SESSION_MAX_AGE = 12 * 60 * 60
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MANAGER_ROLES = ("owner", "admin")


@dataclass(frozen=True)
class Principal:
    user: User
    via: Literal["bearer", "session"]

    @property
    def may_manage(self) -> bool:
        return self.user.role in MANAGER_ROLES


def session_secret() -> str:
    """A key of its own for sessions, derived from NURTUREHUB_SECRET_KEY (which also encrypts credentials)."""
    return hmac.new(settings.secret_key(), b"nurturehub-session-signing", hashlib.sha256).hexdigest()


def _fingerprint(token_hash: str) -> str:
    """Ties a session to the token it was opened with (a new token ends old sessions); not the hash itself."""
    return hmac.new(session_secret().encode(), token_hash.encode(), hashlib.sha256).hexdigest()[:32]


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def authenticate(engine: Engine, request: Request) -> Principal | None:
    """The caller, from a bearer token if one is sent (it then decides alone), else from the session."""
    if "authorization" in request.headers:
        token = _bearer_token(request)
        if not token:
            return None
        with engine.connect() as conn:
            user = user_for_token(conn, token)
        return Principal(user, "bearer") if user else None
    user_id, fingerprint = request.session.get("uid"), request.session.get("fp")
    if not isinstance(user_id, int) or not isinstance(fingerprint, str):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.org_id, users.c.email, users.c.role, users.c.token_hash).where(
                users.c.id == user_id
            )
        ).first()
    if row is None or not hmac.compare_digest(_fingerprint(row.token_hash), fingerprint):
        return None
    return Principal(User(row.id, row.org_id, row.email, row.role), "session")


def sign_in(engine: Engine, request: Request, token: str) -> User | None:
    """Open a session for the token's user; a fresh CSRF token too, so none survives from before."""
    token = token.strip()
    user = None
    if token:
        with engine.connect() as conn:
            user = user_for_token(conn, token)
    request.session.clear()
    if user is None:
        return None
    request.session.update(uid=user.id, fp=_fingerprint(hash_token(token)), csrf=secrets.token_urlsafe(32))
    return user


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
    return bool(submitted and isinstance(expected, str) and hmac.compare_digest(submitted, expected))


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
    principal = authenticate(engine, request)
    if principal is None:
        raise HTTPException(401, "Sign in first: send Authorization: Bearer <token>.", {"WWW-Authenticate": "Bearer"})
    if not principal.may_manage:
        raise HTTPException(403, "Only the organisation's owner and admins can manage integrations.")
    return principal


def require_csrf(request: Request, principal: Principal, submitted: str | None) -> None:
    if not csrf_ok(request, principal, submitted):
        raise HTTPException(403, "This form has expired or did not come from NurtureHub: reload and try again.")


def require_integration(engine: Engine, principal: Principal, raw_id: str) -> IntegrationRef:
    """Step 3: an integration of another organisation, or none at all, is 404 (the two look the same)."""
    ref, integration_id = None, parse_id(raw_id, 2**31 - 1)
    if integration_id is not None:
        with engine.connect() as conn:
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
