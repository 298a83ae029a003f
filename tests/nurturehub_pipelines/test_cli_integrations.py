"""`nurturehub integration list|update|disable|enable|remove`: the JSON each prints, what each stores, and
that no credential value is ever printed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from nurturehub_pipelines.cli import CLI_ACTOR
from nurturehub_pipelines.store import accounts, db, integration_changes
from nurturehub_pipelines.store.tables import integrations, metadata, utcnow
from tests.support.cli import LOOP_KEY, STREET_TOKEN, World, build_world, run, run_process, snapshot

SECRETS = (STREET_TOKEN, LOOP_KEY)


@pytest.fixture
def world(db_url: str) -> World:
    return build_world()


def by_id(listed: dict[str, list[dict[str, object]]]) -> dict[object, dict[str, object]]:
    return {item["integration_id"]: item for item in listed["integrations"]}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_list_shows_settings_and_credential_names_never_values(world: World) -> None:
    done = run_process("integration", "list")  # as an operator runs it
    listed = by_id(done.json())
    assert_no_secret(done.out, done.err)
    assert listed[world.street] == {
        "integration_id": world.street,
        "org_id": world.harbour,
        "crm": "street",
        "name": "Street",
        "enabled": True,
        "paused_reason": None,
        "settings": {},
        "credentials": ["api_token"],
        "credentials_readable": True,
    }
    assert listed[world.reapit]["settings"] == {"customer_id": "HBR"}
    assert listed[world.reapit]["credentials"] == []
    assert listed[world.loop]["org_id"] == world.quay and listed[world.loop]["credentials"] == ["api_key"]

    harbour = run("integration", "list", "--org", str(world.harbour)).json()
    assert [i["integration_id"] for i in harbour["integrations"]] == [world.street, world.reapit]


def test_list_says_unreadable_credentials_instead_of_crashing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "a-different-key")  # the key was changed
    done = run("integration", "list")
    listed = by_id(done.json())
    for sealed in (world.street, world.loop):
        assert listed[sealed]["credentials"] is None and listed[sealed]["credentials_readable"] is False
    assert listed[world.reapit]["credentials_readable"] is True  # nothing stored, nothing to read
    assert f"integration {world.street}:" in done.err and "reconnect" in done.err
    assert_no_secret(done.out, done.err)


def test_update_renames_merges_settings_and_replaces_the_credential_set(world: World) -> None:
    renamed = run("integration", "update", str(world.reapit), "--name", "Reapit (Quay branch)")
    assert renamed.json() == {"integration_id": world.reapit}
    resettled = run("integration", "update", str(world.reapit), "--setting", "customer_id=QUAY")
    assert resettled.json() == {"integration_id": world.reapit}
    new_key = "loop-NEW-key-0c4e"
    done = run_process("integration", "update", str(world.loop), "--credential", f"api_key={new_key}")
    assert done.json() == {"integration_id": world.loop}
    assert new_key not in done.out + done.err

    with db.engine().connect() as conn:
        reapit = accounts.get_integration(conn, world.reapit)
        loop = accounts.get_integration(conn, world.loop)
    assert reapit is not None and loop is not None
    assert (reapit.name, reapit.settings) == ("Reapit (Quay branch)", {"customer_id": "QUAY"})
    assert loop.credentials() == {"api_key": new_key}
    assert new_key not in (loop.credentials_encrypted or "")
    listed = run("integration", "list", "--org", str(world.quay))
    assert new_key not in listed.out and listed.json()["integrations"][0]["credentials"] == ["api_key"]


def test_new_credentials_lift_the_rejected_credentials_hold(world: World) -> None:
    with db.engine().begin() as conn:
        integration_changes.quarantine(conn, world.street, "street", utcnow())
    held = by_id(run("integration", "list").json())[world.street]
    assert held["paused_reason"] == "Waiting for new Street credentials: Street rejected the last ones"
    assert held["enabled"] is True  # held back by the rule, not paused by a person

    run("integration", "update", str(world.street), "--credential", "api_token=street-NEW").json()
    assert by_id(run("integration", "list").json())[world.street]["paused_reason"] is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--credential", "client_id=only-half"], "takes credentials"),  # openapi wants both, or a token
        (["--credential", "token=t", "--credential", "token=u"], "given twice"),
        (["--setting", "region=eu"], "unknown setting 'region'"),
        (["--setting", "base_url="], "empty value for base_url"),
        (["--credential", "token=" + STREET_TOKEN, "--name", "Open\r\nBcc: x@evil.example"], "control characters"),
        (["--name", "x" * 101], "101 characters"),
        (["--name", ""], "must not be empty"),
        (["--credential", STREET_TOKEN], "not KEY=VALUE"),  # the value itself, without '='
        (["--credential", "=" + STREET_TOKEN], "not KEY=VALUE"),
        ([], "nothing to change"),
    ],
)
def test_an_update_that_does_not_fit_is_refused_and_writes_nothing(db_url: str, args: list[str], says: str) -> None:
    world = build_world()
    with db.engine().begin() as conn:
        openapi = accounts.add_integration(
            conn, world.harbour, "openapi", "Open API", {"base_url": "http://crm.example"}, {"token": "t0"}
        )
    before = snapshot()
    refusal = run("integration", "update", str(openapi), *args).refused()
    assert says in refusal
    assert_no_secret(refusal)
    assert snapshot() == before


def test_disable_and_enable_show_in_the_list(world: World) -> None:
    done = run_process("integration", "disable", str(world.street))
    assert done.json() == {"integration_id": world.street, "enabled": False}
    paused = by_id(run("integration", "list").json())[world.street]
    assert paused["enabled"] is False
    assert paused["paused_reason"] == f"Paused by {CLI_ACTOR}" == "Paused by an operator (command line)"
    with db.engine().connect() as conn:
        row = conn.execute(select(integrations).where(integrations.c.id == world.street)).mappings().one()
    assert row["paused_by"] == CLI_ACTOR and row["paused_at"] is not None

    assert run("integration", "enable", str(world.street)).json() == {"integration_id": world.street, "enabled": True}
    resumed = by_id(run("integration", "list").json())[world.street]
    assert resumed["enabled"] is True and resumed["paused_reason"] is None


def test_enable_keeps_the_rejected_credentials_hold_and_says_so(world: World) -> None:
    run("integration", "disable", str(world.street)).json()
    with db.engine().begin() as conn:
        integration_changes.quarantine(conn, world.street, "street", utcnow())
    done = run("integration", "enable", str(world.street))
    assert done.json() == {"integration_id": world.street, "enabled": True}
    assert "stay stopped" in done.err and "Street rejected the last ones" in done.err
    assert by_id(run("integration", "list").json())[world.street]["paused_reason"].startswith("Waiting for new Street")


def rows_of(integration_id: int) -> dict[str, int]:
    """How many rows of each table belong to the integration."""
    found: dict[str, int] = {}
    with db.engine().connect() as conn:
        for table in metadata.sorted_tables:
            column = table.c.get("integration_id")
            if column is None and table is integrations:
                column = integrations.c.id
            if column is not None:
                found[table.name] = len(conn.execute(select(column).where(column == integration_id)).all())
    return found


def test_remove_leaves_no_row_of_the_integration_in_any_table(world: World) -> None:
    assert all(count > 0 for count in rows_of(world.street).values())  # the world has a row of every kind
    others = {other: rows_of(other) for other in (world.reapit, world.loop)}
    done = run_process("integration", "remove", str(world.street))
    assert done.json() == {"integration_id": world.street, "removed": True}
    assert set(rows_of(world.street).values()) == {0}
    assert {other: rows_of(other) for other in others} == others  # the rest untouched
    refusal = run("integration", "remove", str(world.street)).refused()
    assert f"no integration with id {world.street}" in refusal
