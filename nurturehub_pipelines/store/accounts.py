"""Organisations, users and integrations: what the CLI creates and the web app authenticates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from nurturehub_pipelines.store.secrets import decrypt_credentials, encrypt_credentials, hash_token, new_token
from nurturehub_pipelines.store.tables import integrations, organisations, users

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

    def credentials(self) -> dict[str, str]:
        return decrypt_credentials(self.credentials_encrypted)


def create_org(conn: Connection, name: str, owner_email: str) -> dict[str, Any]:
    org_id = conn.execute(insert(organisations).values(name=name).returning(organisations.c.id)).scalar_one()
    user = add_user(conn, org_id, owner_email, "owner")
    return {"org_id": org_id, "owner_user_id": user["user_id"], "token": user["token"]}


def add_user(conn: Connection, org_id: int, email: str, role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if conn.execute(select(organisations.c.id).where(organisations.c.id == org_id)).first() is None:
        raise AccountError(f"no organisation with id {org_id}")
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address")
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


def user_for_token(conn: Connection, token: str) -> User | None:
    row = conn.execute(
        select(users.c.id, users.c.org_id, users.c.email, users.c.role).where(users.c.token_hash == hash_token(token))
    ).first()
    return User(*row) if row else None


def owner_of(conn: Connection, org_id: int) -> User | None:
    row = conn.execute(
        select(users.c.id, users.c.org_id, users.c.email, users.c.role).where(
            users.c.org_id == org_id, users.c.role == "owner"
        )
    ).first()
    return User(*row) if row else None


def add_integration(
    conn: Connection,
    org_id: int,
    crm: str,
    name: str,
    settings: dict[str, str],
    credentials: dict[str, str],
) -> int:
    if conn.execute(select(organisations.c.id).where(organisations.c.id == org_id)).first() is None:
        raise AccountError(f"no organisation with id {org_id}")
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
    )


_INTEGRATION_COLUMNS = (
    integrations.c.id,
    integrations.c.org_id,
    integrations.c.crm,
    integrations.c.name,
    integrations.c.settings,
    integrations.c.enabled,
    integrations.c.credentials_encrypted,
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
    conn.execute(update(integrations).where(integrations.c.id == integration_id).values(enabled=enabled))
