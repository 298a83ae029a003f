"""`enabled`, `paused_reason` and `next_sync_at` of a paused or held integration, on both card paths."""

from __future__ import annotations

from read_model_log import NOW, card, log
from sqlalchemy import Connection

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store import accounts, integration_changes
from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change

HELD = "Waiting for new Street credentials: Street rejected the last ones"


def _org(conn: Connection) -> tuple[int, dict[str, int]]:
    """Four Street integrations: running, paused by a person, held by the rejected-credentials rule, both."""
    org = accounts.create_org(conn, "Paused Lettings", "owner@paused.example")["org_id"]
    ids = {
        state: accounts.add_integration(conn, org, "street", state.title(), {}, {"api_token": f"t-{state}"})
        for state in ("running", "paused", "held", "both")
    }
    for iid in ids.values():
        log(conn, iid, "sync_finished", "success", 2, run_id=f"ok-{iid}")
        log(conn, iid, "sync_finished", "error", 1, message="Street rejected the API token")
    set_enabled = integration_changes.set_enabled
    set_enabled(conn, ids["paused"], False, "admin@agency.example")
    integration_changes.quarantine(conn, ids["held"], "street", NOW)
    integration_changes.quarantine(conn, ids["both"], "street", NOW)
    set_enabled(conn, ids["both"], False, "owner@agency.example")
    return org, ids


def test_a_paused_or_held_card_says_why_and_has_no_next_sync(conn: Connection) -> None:
    _org_id, ids = _org(conn)
    cards = {state: card(conn, iid) for state, iid in ids.items()}
    assert {state: (c.enabled, c.paused_reason) for state, c in cards.items()} == {
        "running": (True, None),
        "paused": (False, "Paused by admin@agency.example"),
        "held": (True, HELD),
        "both": (False, "Paused by owner@agency.example"),  # a person's pause is the first reason given
    }
    assert cards["running"].next_sync_at == read_model.next_sync_at(NOW)
    assert [c.next_sync_at for s, c in cards.items() if s != "running"] == [None, None, None]
    assert all(c.health == "red" for c in cards.values())  # pausing does not change the badge
    as_json = cards["paused"].to_json()
    assert list(as_json)[:6] == ["id", "crm", "crm_name", "name", "enabled", "paused_reason"]
    assert (as_json["enabled"], as_json["paused_reason"], as_json["next_sync_at"]) == (
        False,
        "Paused by admin@agency.example",
        None,
    )


def test_resume_and_reconnect_clear_the_reasons(conn: Connection) -> None:
    _org_id, ids = _org(conn)
    integration_changes.set_enabled(conn, ids["both"], True, "owner@agency.example")
    assert (card(conn, ids["both"]).enabled, card(conn, ids["both"]).paused_reason) == (True, HELD)
    apply_change(conn, ids["both"], IntegrationChange(credentials={"api_token": "new"}), "owner@agency.example")
    resumed = card(conn, ids["both"])
    assert (resumed.paused_reason, resumed.next_sync_at) == (None, read_model.next_sync_at(NOW))


def test_both_card_paths_give_the_same_json(conn: Connection) -> None:
    """SQLite builds cards one by one; PostgreSQL in one pass: the same fields either way."""
    org, ids = _org(conn)
    one_by_one = [read_model.card(conn, ref, NOW).to_json() for ref in read_model.integration_refs(conn, org)]
    together = [c.to_json() for c in read_model.cards(conn, org, NOW)]
    assert together == one_by_one
    assert [c["paused_reason"] for c in together] == [
        None,
        "Paused by admin@agency.example",
        HELD,
        "Paused by owner@agency.example",
    ]
    assert [c["id"] for c in together] == list(ids.values())
