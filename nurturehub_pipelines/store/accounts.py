"""Organisations, users and integrations: what the CLI creates and the web app authenticates.

Every writer here checks its input first (DESIGN.md, "Input rules", in store/validation.py) and refuses
with an `AccountError` before anything is written, so a refusal leaves the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from nurturehub_pipelines.store.secrets import decrypt_credentials, encrypt_credentials, hash_token, new_token
from nurturehub_pipelines.store.sessions import end_sessions
from nurturehub_pipelines.store.tables import integrations, notifications, organisations, users

ROLES = ("owner", "admin", "member")


class AccountError(ValueError):
    """A request the user can correct; the message says how."""


@dataclass(frozen=True)
class User:
    id: int
    org_id: int
    email: str
    role: str


@dataclass(frozen=True)
class Integration:
    id: int
    org_id: int
    crm: str
    name: str
    settings: dict[str, str]
    enabled: bool
    credentials_encrypted: str | None
    paused_by: str | None = None  # who paused it (`enabled` false), for the card's paused_reason
    quarantine_reason: str | None = None  # why the rejected-credentials rule holds its schedule back

    def credentials(self) -> dict[str, str]:
        return decrypt_credentials(self.credentials_encrypted)


def require_org(conn: Connection, org_id: int) -> None:
    if conn.execute(select(organisations.c.id).where(organisations.c.id == org_id)).first() is None:
        raise AccountError(f"no organisation with id {org_id}")


def create_org(conn: Connection, name: str, owner_email: str) -> dict[str, Any]:
    from nurturehub_pipelines.store.validation import check_email, check_name  # (validation imports this module)

    name = check_name(name, "organisation name")
    owner_email = check_email(owner_email)
    org_id = conn.execute(insert(organisations).values(name=name).returning(organisations.c.id)).scalar_one()
    user = add_user(conn, org_id, owner_email, "owner")
    return {"org_id": org_id, "owner_user_id": user["user_id"], "token": user["token"]}


def add_user(conn: Connection, org_id: int, email: str, role: str) -> dict[str, Any]:
    from nurturehub_pipelines.store.validation import check_email  # (validation imports this module)

    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    require_org(conn, org_id)
    email = check_email(email)
    if (
        role == "owner"
        and conn.execute(
            select(func.count()).select_from(users).where(users.c.org_id == org_id, users.c.role == "owner")
        ).scalar_one()
    ):
        raise AccountError(f"organisation {org_id} already has an owner; an organisation has exactly one")
    if conn.execute(select(users.c.id).where(users.c.org_id == org_id, users.c.email == email)).first():
        raise AccountError(f"{email} is already a user of organisation {org_id}")
    token = new_token()
    user_id = conn.execute(
        insert(users).values(org_id=org_id, email=email, role=role, token_hash=hash_token(token)).returning(users.c.id)
    ).scalar_one()
    return {"user_id": user_id, "token": token}


_USER_COLUMNS = (users.c.id, users.c.org_id, users.c.email, users.c.role)


def get_user(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).first()
    return User(*row) if row else None


def require_user(conn: Connection, user_id: int) -> User:
    user = get_user(conn, user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}")
    return user


def list_users(conn: Connection, org_id: int) -> list[User]:
    require_org(conn, org_id)
    rows = conn.execute(select(*_USER_COLUMNS).where(users.c.org_id == org_id).order_by(users.c.id))
    return [User(*row) for row in rows]


def remove_user(conn: Connection, user_id: int) -> None:
    """A user leaves: their token and every session stop working at once; the owner stays (exactly one)."""
    user = require_user(conn, user_id)
    if user.role == "owner":
        raise AccountError(
            f"user {user_id} ({user.email}) is the owner of organisation {user.org_id}, "
            "and an organisation keeps exactly one owner: the owner cannot be removed"
        )
    end_sessions(conn, user_id)
    conn.execute(delete(notifications).where(notifications.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))


def rotate_token(conn: Connection, user_id: int) -> str:
    """A new token for a leaked one: the old hash is replaced and every session made with it ends."""
    require_user(conn, user_id)
    token = new_token()
    conn.execute(update(users).where(users.c.id == user_id).values(token_hash=hash_token(token)))
    end_sessions(conn, user_id)
    return token


def user_for_token(conn: Connection, token: str) -> User | None:
    row = conn.execute(select(*_USER_COLUMNS).where(users.c.token_hash == hash_token(token))).first()
    return User(*row) if row else None


def owner_of(conn: Connection, org_id: int) -> User | None:
    row = conn.execute(select(*_USER_COLUMNS).where(users.c.org_id == org_id, users.c.role == "owner")).first()
    return User(*row) if row else None


def add_integration(
    conn: Connection,
    org_id: int,
    crm: str,
    name: str,
    settings: dict[str, str],
    credentials: dict[str, str],
) -> int:
    from nurturehub_pipelines.store.validation import check_name  # (validation imports this module)

    require_org(conn, org_id)
    name = check_name(name, "integration name")
    return conn.execute(
        insert(integrations)
        .values(
            org_id=org_id,
            crm=crm,
            name=name,
            settings=settings,
            credentials_encrypted=encrypt_credentials(credentials),
            enabled=True,
        )
        .returning(integrations.c.id)
    ).scalar_one()


def _integration(row: Any) -> Integration:
    return Integration(
        id=row.id,
        org_id=row.org_id,
        crm=row.crm,
        name=row.name,
        settings=dict(row.settings or {}),
        enabled=row.enabled,
        credentials_encrypted=row.credentials_encrypted,
        paused_by=row.paused_by,
        quarantine_reason=row.quarantine_reason,
    )


_INTEGRATION_COLUMNS = (
    integrations.c.id,
    integrations.c.org_id,
    integrations.c.crm,
    integrations.c.name,
    integrations.c.settings,
    integrations.c.enabled,
    integrations.c.credentials_encrypted,
    integrations.c.paused_by,
    integrations.c.quarantine_reason,
)


def get_integration(conn: Connection, integration_id: int) -> Integration | None:
    row = conn.execute(select(*_INTEGRATION_COLUMNS).where(integrations.c.id == integration_id)).first()
    return _integration(row) if row else None


def list_integrations(conn: Connection, org_id: int | None = None, enabled_only: bool = False) -> list[Integration]:
    query = select(*_INTEGRATION_COLUMNS).order_by(integrations.c.id)
    if org_id is not None:
        query = query.where(integrations.c.org_id == org_id)
    if enabled_only:
        query = query.where(integrations.c.enabled.is_(True))
    return [_integration(row) for row in conn.execute(query)]


def set_enabled(conn: Connection, integration_id: int, enabled: bool) -> None:
    """The bare flag, for fixtures; a person's pause goes through integration_changes (who and when)."""
    conn.execute(update(integrations).where(integrations.c.id == integration_id).values(enabled=enabled))
