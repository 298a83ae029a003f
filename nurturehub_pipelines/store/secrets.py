"""Credentials encrypted at rest (Fernet), and sign-in tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import json
import secrets

from cryptography.fernet import Fernet

from nurturehub_pipelines import settings


def encrypt_credentials(credentials: dict[str, str]) -> str | None:
    if not credentials:
        return None
    return Fernet(settings.fernet_key()).encrypt(json.dumps(credentials).encode()).decode()


def decrypt_credentials(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    return json.loads(Fernet(settings.fernet_key()).decrypt(token.encode()))


def new_token() -> str:
    return "nh_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough (no salt or stretching needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
