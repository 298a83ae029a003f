"""`nurturehub user list|remove` and `token rotate`: a removed user or a rotated token stops working at
once, sessions included; the owner stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Table, func, select

from nurturehub_pipelines.store import accounts, db, sessions
from nurturehub_pipelines.store.tables import notifications, users, utcnow, web_sessions
from tests.support.cli import World, build_world, run, run_process, snapshot


@pytest.fixture
def world(db_url: str) -> World:
    return build_world()


def signed_in(cookie: str) -> int | None:
    with db.engine().connect() as conn:
        return sessions.session_user(conn, cookie, utcnow())


def token_user(token: str) -> accounts.User | None:
    with db.engine().connect() as conn:
        return accounts.user_for_token(conn, token)


def count(table: Table, **where: object) -> int:
    with db.engine().connect() as conn:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return conn.execute(query).scalar_one()


def test_user_list_prints_each_user_of_the_organisation(world: World) -> None:
    done = run_process("user", "list", "--org", str(world.harbour))
    assert done.json() == {
        "users": [
            {"user_id": world.owner["user_id"], "email": "owner@harbour.example", "role": "owner"},
            {"user_id": world.admin["user_id"], "email": "admin@harbour.example", "role": "admin"},
            {"user_id": world.member["user_id"], "email": "member@harbour.example", "role": "member"},
        ]
    }
    assert world.owner["token"] not in done.out  # tokens are shown once, at creation
    quay = run("user", "list", "--org", str(world.quay)).json()
    assert [u["user_id"] for u in quay["users"]] == [world.quay_owner["user_id"]]


def test_the_owner_cannot_be_removed(world: World) -> None:
    before = snapshot()
    refusal = run("user", "remove", str(world.owner["user_id"])).refused()
    assert "owner" in refusal and "cannot be removed" in refusal
    assert snapshot() == before
    assert token_user(world.owner["token"]) is not None


def test_a_removed_user_and_their_sessions_stop_working_at_once(world: World) -> None:
    admin = world.admin["user_id"]
    assert signed_in(world.cookies[admin]) == admin and count(notifications, user_id=admin) > 0
    done = run_process("user", "remove", str(admin))
    assert done.json() == {"user_id": admin, "removed": True}
    assert token_user(world.admin["token"]) is None
    assert signed_in(world.cookies[admin]) is None
    assert count(web_sessions, user_id=admin) == 0 and count(notifications, user_id=admin) == 0
    assert count(users, id=admin) == 0
    for other in (world.owner["user_id"], world.member["user_id"], world.quay_owner["user_id"]):
        assert signed_in(world.cookies[other]) == other  # everyone else stays signed in
    refusal = run("user", "remove", str(admin)).refused()
    assert f"no user with id {admin}" in refusal


def test_a_rotated_token_replaces_the_old_one_and_ends_every_session(world: World) -> None:
    owner = world.owner["user_id"]
    with db.engine().begin() as conn:  # a second browser of the same user
        second = sessions.open_session(conn, owner, utcnow(), timedelta(hours=1))
    done = run_process("token", "rotate", "--user", str(owner))
    answer = done.json()
    assert set(answer) == {"user_id", "token"} and answer["user_id"] == owner
    assert answer["token"] != world.owner["token"]
    assert token_user(world.owner["token"]) is None  # the leaked token is refused
    new = token_user(answer["token"])
    assert new is not None and (new.id, new.role) == (owner, "owner")
    assert signed_in(world.cookies[owner]) is None and signed_in(second) is None
    assert count(web_sessions, user_id=owner) == 0
    assert signed_in(world.cookies[world.admin["user_id"]]) == world.admin["user_id"]
    with db.engine().connect() as conn:
        stored = conn.execute(select(users.c.token_hash)).scalars().all()
    assert answer["token"] not in stored  # only its hash is kept
