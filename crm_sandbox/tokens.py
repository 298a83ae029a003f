"""OAuth client-credentials tokens: issued, expiring after a TTL, and revocable all at once."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable

DEFAULT_TTL = 3600


def opaque_token() -> str:
    """A random bearer token."""
    return secrets.token_urlsafe(32)


def jwt_like_token() -> str:
    """A token shaped like an (unverifiable) JWT, as Alto issues; clients must treat it as opaque."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": "sandbox", "jti": secrets.token_hex(8), "iat": int(time.time())}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(32)}"


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The (id, secret) of an ``Authorization: Basic`` header, or None if absent or malformed."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    scheme, _, value = (authorization or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class TokenIssuer:
    """Tokens one CRM has issued, with their expiry (monotonic clock)."""

    def __init__(self, make: Callable[[], str] = opaque_token) -> None:
        self._make = make
        self.ttl = DEFAULT_TTL
        self._expires: dict[str, float] = {}

    def issue(self) -> str:
        """A new token valid for ``ttl`` seconds."""
        now = time.monotonic()
        self._expires = {t: at for t, at in self._expires.items() if at > now}
        token = self._make()
        self._expires[token] = now + self.ttl
        return token

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` was issued here and has not expired or been revoked."""
        return token is not None and self._expires.get(token, 0.0) > time.monotonic()

    def expire_all(self) -> None:
        """Revoke every issued token."""
        self._expires.clear()
