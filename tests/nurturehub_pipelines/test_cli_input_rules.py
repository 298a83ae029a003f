"""DESIGN.md "Input rules" at every command, old and new: each refusal goes to stderr with a non-zero exit,
names what is wrong (an unknown id by its number), never echoes a credential, and writes nothing."""

from __future__ import annotations

import pytest

from tests.support.cli import STREET_TOKEN, World, build_world, run, run_process, snapshot

UNKNOWN = "987654"
CRLF_NAME = "Harbour\r\nBcc: everyone@evil.example"
LONG_NAME = "x" * 101
TWO_ADDRESSES = "owner@new.example, boss@evil.example"
SECRET = STREET_TOKEN
ADD_STREET = ["integration", "add", "--org", "{harbour}", "--crm", "street"]

REFUSALS: list[tuple[list[str], str]] = [
    # org create: the organisation name and the owner's email
    (["org", "create", "--name", CRLF_NAME, "--owner-email", "o@new.example"], "control characters"),
    (["org", "create", "--name", LONG_NAME, "--owner-email", "o@new.example"], "101 characters"),
    (["org", "create", "--name", "", "--owner-email", "o@new.example"], "must not be empty"),
    (["org", "create", "--name", "New", "--owner-email", TWO_ADDRESSES], "not one email address"),
    (["org", "create", "--name", "New", "--owner-email", "o@new.example\r\nBcc: e@evil.example"], "not one email"),
    (["org", "create", "--name", "New", "--owner-email", "o" * 250 + "@new.example"], "not one email address"),
    # user add
    (["user", "add", "--org", "{harbour}", "--email", "a@x.example b@x.example", "--role", "admin"], "not one email"),
    (["user", "add", "--org", "{harbour}", "--email", "a@x.example", "--role", "superuser"], "unknown role"),
    (["user", "add", "--org", UNKNOWN, "--email", "a@x.example", "--role", "admin"], f"organisation with id {UNKNOWN}"),
    # integration add: the name, the org, and K=V pairs that may hold a credential
    ([*ADD_STREET, "--name", CRLF_NAME, "--credential", f"api_token={SECRET}"], "control characters"),
    ([*ADD_STREET, "--name", LONG_NAME, "--credential", f"api_token={SECRET}"], "101 characters"),
    (
        [*ADD_STREET[:3], UNKNOWN, *ADD_STREET[4:], "--credential", f"api_token={SECRET}"],
        f"organisation with id {UNKNOWN}",
    ),
    ([*ADD_STREET, "--credential", SECRET], "not KEY=VALUE"),
    ([*ADD_STREET, "--credential", "api_token", SECRET], "not shown"),
    (
        [*ADD_STREET, "--credential", f"api_token={SECRET}", "--credential", f"pw={SECRET}"],
        "takes credentials: api_token",
    ),
    # the new commands
    (["integration", "list", "--org", UNKNOWN], f"no organisation with id {UNKNOWN}"),
    (["integration", "update", UNKNOWN, "--name", "New name"], f"no integration with id {UNKNOWN}"),
    (["integration", "update", UNKNOWN, "--credential", f"api_token={SECRET}"], f"no integration with id {UNKNOWN}"),
    (["integration", "update", "{street}", "--name", CRLF_NAME], "control characters"),
    (["integration", "update", "{street}", "--credential", SECRET], "not KEY=VALUE"),
    (["integration", "update", "--credential", "api_token", SECRET, "{street}"], "not shown"),
    (["integration", "disable", UNKNOWN], f"no integration with id {UNKNOWN}"),
    (["integration", "enable", UNKNOWN], f"no integration with id {UNKNOWN}"),
    (["integration", "remove", UNKNOWN], f"no integration with id {UNKNOWN}"),
    (["user", "list", "--org", UNKNOWN], f"no organisation with id {UNKNOWN}"),
    (["user", "remove", UNKNOWN], f"no user with id {UNKNOWN}"),
    (["token", "rotate", "--user", UNKNOWN], f"no user with id {UNKNOWN}"),
    (["sync", UNKNOWN], f"no integration with id {UNKNOWN}"),
]


@pytest.fixture
def world(db_url: str) -> World:
    return build_world()


def filled(args: list[str], world: World) -> list[str]:
    return [arg.format(harbour=world.harbour, street=world.street) if "{" in arg else arg for arg in args]


@pytest.mark.parametrize(
    ("args", "says"), REFUSALS, ids=[f"{' '.join(a[:2])} {i}" for i, (a, _) in enumerate(REFUSALS)]
)
def test_a_refusal_names_the_problem_echoes_no_credential_and_writes_nothing(
    world: World, args: list[str], says: str
) -> None:
    before = snapshot()
    refusal = run(*filled(args, world)).refused()
    assert says in refusal
    assert SECRET not in refusal and "Bcc" not in refusal
    assert snapshot() == before


def test_a_value_without_equals_is_not_echoed_by_the_real_command(world: World) -> None:
    """The issue's case, as a user hits it: `--credential VALUE` printed VALUE on stderr."""
    done = run_process("integration", "add", "--org", str(world.harbour), "--crm", "street", "--credential", SECRET)
    assert SECRET not in done.refused() + done.out


def test_names_of_100_characters_and_plain_addresses_are_accepted(world: World) -> None:
    name = "N" * 100
    org = run("org", "create", "--name", name, "--owner-email", "  Owner@New.Example ").json()
    assert set(org) == {"org_id", "owner_user_id", "token"}
    users = run("user", "list", "--org", str(org["org_id"])).json()["users"]
    assert users[0]["email"] == "owner@new.example"  # one address, normalised
    added = run(
        "integration", "add", "--org", str(org["org_id"]), "--crm", "loop", "--name", name, "--credential", "api_key=k"
    )
    assert run("integration", "list", "--org", str(org["org_id"])).json()["integrations"][0]["name"] == name
    assert set(added.json()) == {"integration_id"}
