"""The sync engine end to end, for all six CRMs: real job, real loopback HTTP, real app database."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from crm_resources.core import OAuth2ClientCredentials
from crm_resources.registry import REGISTRY, crm_name

if TYPE_CHECKING:
    from tests.nurturehub_pipelines.sync.conftest import Harness

CONTACTS, LEADS = 260, 230  # every stream of every CRM spans several pages at the sizes used here


def load(h: Harness, **extra: int) -> None:
    h.control.dataset(h.crm, contacts=CONTACTS, leads=LEADS, **extra)


def small_pages(h: Harness) -> dict[str, int]:
    """agentOS pages by up to 1,000; ask for 100 so its streams are multi-page too."""
    return {"page_size": 100} if "page_size" in REGISTRY[h.crm].model_fields else {}


def test_full_sync_stores_every_record_once_and_a_second_run_changes_nothing(harness: Harness) -> None:
    load(harness)
    first = harness.sync(full=True, **small_pages(harness))
    assert first["_run"]["success"]
    assert [first[e]["outcome"] for e in ("auth_refresh", "contact_import", "lead_update", "sync_finished")] == [
        "success"
    ] * 4
    assert first["contact_import"]["records_affected"] == CONTACTS
    assert first["lead_update"]["records_affected"] == LEADS
    assert first["sync_finished"]["records_affected"] == CONTACTS + LEADS
    assert harness.count("contacts") == harness.distinct_ids("contacts") == CONTACTS
    assert harness.count("leads") == harness.distinct_ids("leads") == LEADS
    assert first["sync_finished"]["trigger"] == "manual"

    second = harness.sync(full=True, **small_pages(harness))
    assert second["sync_finished"]["outcome"] == "success"
    assert second["contact_import"]["records_affected"] == 0
    assert second["lead_update"]["records_affected"] == 0
    assert harness.count("contacts") == CONTACTS and harness.count("leads") == LEADS


def test_incremental_sync_fetches_only_what_changed(harness: Harness) -> None:
    load(harness)
    harness.sync(full=True)
    harness.control.touch(harness.crm, contacts=3, leads=2)
    harness.control.clear_requests(harness.crm)

    result = harness.sync(full=False)

    assert result["sync_finished"]["outcome"] == "success"
    assert result["contact_import"]["records_affected"] == 3
    assert result["lead_update"]["records_affected"] == 2
    requests = [r for r in harness.control.requests(harness.crm) if r["method"] == "GET"]
    if REGISTRY[harness.crm].spec.since_param is None:
        # agentOS has no modified-since filter: it reads everything and writes only what changed.
        return
    since = REGISTRY[harness.crm].spec.since_param
    data_requests = [r for r in requests if since in r["query"] or r is not requests[0]]
    assert all(since in r["query"] for r in data_requests), requests
    endpoints = len(REGISTRY[harness.crm].spec.contacts) + len(REGISTRY[harness.crm].spec.leads)
    # One page per endpoint holds everything changed (plus the key check for key-auth CRMs).
    assert len(requests) <= endpoints + 1, requests


PASSING_FAULTS = [
    {"kind": "rate_limit", "retry_after": "1"},
    {"kind": "rate_limit"},
    {"kind": "server_error"},
    {"kind": "unavailable", "retry_after": "1"},
    {"kind": "timeout", "seconds": 2.0},
    {"kind": "reset"},
    {"kind": "truncated_json"},
    {"kind": "html", "status": 502},
    {"kind": "html"},
]


@pytest.mark.parametrize("fault", PASSING_FAULTS, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_a_passing_fault_ends_in_success_with_nothing_lost(harness: Harness, fault: dict[str, object]) -> None:
    load(harness)
    harness.control.fault(harness.crm, stream="contacts", times=1, after=1, **fault)

    result = harness.sync(full=True, **small_pages(harness))

    assert harness.control.faults(harness.crm) == []  # it fired
    assert result["sync_finished"]["outcome"] == "success", result["sync_finished"]["message"]
    assert harness.count("contacts") == harness.distinct_ids("contacts") == CONTACTS
    assert harness.count("leads") == LEADS


PERSISTENT_FAULTS = [
    ({"kind": "server_error"}, "next sync"),
    ({"kind": "unavailable"}, "next sync"),
    ({"kind": "timeout", "seconds": 2.0}, "next sync"),
    ({"kind": "reset"}, "next sync"),
    ({"kind": "truncated_json"}, "truncated or invalid JSON"),
    ({"kind": "html"}, "HTML page"),
    ({"kind": "rate_limit"}, "next attempt at"),
    ({"kind": "rate_limit", "retry_after": "3600"}, "next attempt at"),
]


@pytest.mark.parametrize("fault,words", PERSISTENT_FAULTS, ids=lambda f: str(f))
def test_a_persistent_fault_ends_in_a_clear_error(harness: Harness, fault: dict[str, object], words: str) -> None:
    load(harness)
    harness.control.fault(harness.crm, stream="leads", times=-1, **fault)

    result = harness.sync(full=True)

    assert not result["_run"]["success"]
    finished = result["sync_finished"]
    assert finished["outcome"] == "error"
    assert crm_name(harness.crm) in finished["message"] and words in finished["message"], finished["message"]
    assert "Traceback" not in finished["message"]
    assert result["lead_update"]["outcome"] == "error"
    assert result["contact_import"]["outcome"] == "success"
    assert harness.count("contacts") == CONTACTS  # what was read before the fault is kept


@pytest.mark.parametrize("kind", ["unauthorized", "forbidden"])
def test_rejected_credentials_say_reconnect(harness: Harness, kind: str) -> None:
    load(harness)
    harness.control.fault(harness.crm, times=-1, kind=kind)

    result = harness.sync(full=True)

    assert set(result) == {"auth_refresh", "sync_finished", "_run"}  # nothing else is written
    assert result["auth_refresh"]["outcome"] == result["sync_finished"]["outcome"] == "error"
    message = result["sync_finished"]["message"]
    assert crm_name(harness.crm) in message and "reconnect" in message.lower(), message


def test_a_401_mid_sync_gets_one_fresh_token_on_oauth_crms(harness: Harness) -> None:
    load(harness)
    harness.control.fault(harness.crm, kind="unauthorized", stream="contacts", after=1, times=1)

    result = harness.sync(full=True, **small_pages(harness))

    resource = REGISTRY[harness.crm]
    settings = {k: "x" for k in resource.settings_keys}
    credentials = {k: "x" for k in resource.credential_sets[-1]}
    oauth = isinstance(resource.model_construct().connection(settings, credentials)[1], OAuth2ClientCredentials)
    if harness.crm == "openapi":
        oauth = False  # the harness connects the Open API with a static token
    if oauth:
        assert result["sync_finished"]["outcome"] == "success", result["sync_finished"]["message"]
        tokens = [r for r in harness.control.requests(harness.crm) if r["method"] == "POST"]
        assert len(tokens) == 2
    else:
        assert result["sync_finished"]["outcome"] == "error"
        assert "reconnect" in result["sync_finished"]["message"].lower()


def test_malformed_records_are_skipped_and_counted(harness: Harness) -> None:
    load(harness, malformed_contacts=3, malformed_leads=2)

    result = harness.sync(full=True, **small_pages(harness))

    assert result["sync_finished"]["outcome"] == "warning"
    assert result["contact_import"]["outcome"] == result["lead_update"]["outcome"] == "warning"
    assert result["contact_import"]["records_skipped"] == 3
    assert result["lead_update"]["records_skipped"] == 2
    assert result["sync_finished"]["records_skipped"] == 5
    assert "3 skipped" in result["contact_import"]["message"]
    assert harness.count("contacts") == CONTACTS and harness.count("leads") == LEADS


def test_a_repeating_next_link_fails_quickly(harness: Harness) -> None:
    load(harness)
    harness.control.fault(harness.crm, kind="repeat_next", stream="contacts")

    started = time.monotonic()
    result = harness.sync(full=True, **small_pages(harness))

    assert result["sync_finished"]["outcome"] == "error"
    assert "repeats" in result["sync_finished"]["message"] or "loop" in result["sync_finished"]["message"]
    assert len(harness.control.requests(harness.crm)) < 20
    assert time.monotonic() - started < 30
