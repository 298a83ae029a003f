"""Organisations, users and integrations as the store keeps them: one owner, token hashes, sealed credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.secrets import hash_token
from nurturehub_pipelines.store.tables import integrations, users

STREET = {"api_token": "street-live-token-0123456789"}


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with db.engine(db_url).begin() as connection:
        yield connection


def test_an_organisation_is_created_with_its_owner(conn: Connection) -> None:
    org = accounts.create_org(conn, "Harbour Lettings", "  Owner@Harbour.Example ")
    owner = accounts.owner_of(conn, org["org_id"])
    assert owner == accounts.User(org["owner_user_id"], org["org_id"], "owner@harbour.example", "owner")
    assert accounts.user_for_token(conn, org["token"]) == owner  # the token signs the owner in


def test_only_the_tokens_hash_is_stored(conn: Connection) -> None:
    org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
    admin = accounts.add_user(conn, org["org_id"], "admin@harbour.example", "admin")
    stored = conn.execute(select(users)).mappings().all()
    for token in (org["token"], admin["token"]):
        assert [row["token_hash"] for row in stored].count(hash_token(token)) == 1
        assert all(token not in str(value) for row in stored for value in row.values())
    assert accounts.user_for_token(conn, admin["token"]) == accounts.User(
        admin["user_id"], org["org_id"], "admin@harbour.example", "admin"
    )
    assert accounts.user_for_token(conn, hash_token(admin["token"])) is None  # the hash is no token


def test_an_organisation_has_exactly_one_owner(conn: Connection) -> None:
    org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
    with pytest.raises(accounts.AccountError, match="already has an owner"):
        accounts.add_user(conn, org["org_id"], "second@harbour.example", "owner")
    other = accounts.create_org(conn, "Quay", "owner@quay.example")  # one owner each, not one in all
    assert accounts.owner_of(conn, other["org_id"]) is not None


def test_the_database_refuses_a_second_owner_too(conn: Connection) -> None:
    org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(
            insert(users).values(
                org_id=org["org_id"], email="sneaky@harbour.example", role="owner", token_hash=hash_token("x")
            )
        )


@pytest.mark.parametrize(
    ("email", "role", "refusal"),
    [
        ("member@harbour.example", "superuser", "unknown role"),
        ("not-an-address", "member", "not one email address"),
        ("OWNER@harbour.example", "member", "already a user"),
    ],
)
def test_a_user_the_organisation_cannot_have_is_refused(conn: Connection, email: str, role: str, refusal: str) -> None:
    org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
    with pytest.raises(accounts.AccountError, match=refusal):
        accounts.add_user(conn, org["org_id"], email, role)


def test_users_and_integrations_need_an_existing_organisation(conn: Connection) -> None:
    with pytest.raises(accounts.AccountError, match="no organisation with id 404"):
        accounts.add_user(conn, 404, "a@b.example", "member")
    with pytest.raises(accounts.AccountError, match="no organisation with id 404"):
        accounts.add_integration(conn, 404, "street", "Street", {}, STREET)


def test_an_integration_keeps_its_settings_and_seals_its_credentials(conn: Connection) -> None:
    org = accounts.create_org(conn, "Harbour", "owner@harbour.example")
    integration_id = accounts.add_integration(conn, org["org_id"], "street", "Street", {"branch": "Quay"}, STREET)
    integration = accounts.get_integration(conn, integration_id)
    assert integration is not None
    assert (integration.org_id, integration.crm, integration.name, integration.enabled) == (
        org["org_id"],
        "street",
        "Street",
        True,
    )
    assert integration.settings == {"branch": "Quay"}
    stored = conn.execute(select(integrations.c.credentials_encrypted)).scalar_one()
    assert STREET["api_token"] not in stored
    assert integration.credentials() == STREET
    no_credentials = accounts.add_integration(conn, org["org_id"], "reapit", "Reapit", {"customer_id": "SBOX"}, {})
    assert accounts.get_integration(conn, no_credentials).credentials_encrypted is None  # type: ignore[union-attr]


def test_integrations_are_listed_per_organisation_and_by_enabled(conn: Connection) -> None:
    harbour = accounts.create_org(conn, "Harbour", "owner@harbour.example")["org_id"]
    quay = accounts.create_org(conn, "Quay", "owner@quay.example")["org_id"]
    first = accounts.add_integration(conn, harbour, "street", "Street", {}, STREET)
    second = accounts.add_integration(conn, harbour, "loop", "Loop", {}, {"api_key": "k"})
    theirs = accounts.add_integration(conn, quay, "loop", "Loop", {}, {"api_key": "k"})
    accounts.set_enabled(conn, first, False)
    assert [i.id for i in accounts.list_integrations(conn)] == [first, second, theirs]
    assert [i.id for i in accounts.list_integrations(conn, harbour)] == [first, second]
    assert [i.id for i in accounts.list_integrations(conn, harbour, enabled_only=True)] == [second]
    assert accounts.get_integration(conn, 9999) is None
