"""Credentials encrypted at rest (Fernet), and sign-in tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import cast

from cryptography.fernet import Fernet, InvalidToken

from nurturehub_pipelines import settings


class CredentialsUnreadable(ValueError):
    """Stored credentials that this deployment's key can't open: a changed key, not a CRM problem."""


def encrypt_credentials(credentials: dict[str, str]) -> str | None:
    if not credentials:
        return None
    return Fernet(settings.fernet_key()).encrypt(json.dumps(credentials).encode()).decode()


def decrypt_credentials(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    try:
        plain = Fernet(settings.fernet_key()).decrypt(token.encode())
    except InvalidToken:
        # Fernet's own error has no message; say which setting to look at (never the key itself).
        raise CredentialsUnreadable(
            "stored credentials can't be decrypted: NURTUREHUB_SECRET_KEY (or the key file in NURTUREHUB_HOME) "
            "is not the key they were encrypted with; restore that key, or reconnect the integration"
        ) from None
    return cast(dict[str, str], json.loads(plain))


def new_token() -> str:
    return "nh_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough (no salt or stretching needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
