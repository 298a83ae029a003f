"""Browser sessions held server-side: the cookie carries a random key, `web_sessions` its hash.

A session is valid only while its row exists and has not expired, so ending one is deleting its row:
signing out ends that session; rotating a token or removing a user ends all of theirs, at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select

from nurturehub_pipelines.store.tables import web_sessions


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def open_session(conn: Connection, user_id: int, now: datetime, lifetime: timedelta) -> str:
    """A new session for the user; returns the key for the cookie (shown to the browser only)."""
    key = secrets.token_urlsafe(32)
    conn.execute(insert(web_sessions).values(id=_hash(key), user_id=user_id, created_at=now, expires_at=now + lifetime))
    return key


def session_user(conn: Connection, key: str, now: datetime) -> int | None:
    """The user of a live session, or None for an unknown, ended or expired one."""
    row = conn.execute(
        select(web_sessions.c.user_id).where(web_sessions.c.id == _hash(key), web_sessions.c.expires_at > now)
    ).first()
    return row.user_id if row else None


def end_session(conn: Connection, key: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.id == _hash(key)))


def end_sessions(conn: Connection, user_id: int) -> int:
    """Every session of the user (a rotated token, a removed user); returns how many were ended."""
    return conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id)).rowcount


def prune_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now)).rowcount
