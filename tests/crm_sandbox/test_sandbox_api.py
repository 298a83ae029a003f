"""The six simulated CRM APIs on the wire: auth, envelopes, paging, filters, mutations, datasets."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from sandbox_drivers import Driver

from crm_sandbox import SANDBOX_CREDENTIALS, SandboxControl

DriverFor = Callable[[str], Driver]
# Base records of the default dataset are 2026-01-01T00:00Z + slot minutes (slots 0..249); a touch is
# stamped at least one minute after the last, so this filter finds touched records only, whatever the clock.
SINCE_AFTER_BASE = "2026-01-01T04:10:00Z"


def test_missing_or_wrong_credentials_get_401_in_the_crm_error_shape(driver: Driver) -> None:
    for headers in ({}, driver.wrong_headers()):
        response = driver.get(driver.page_one(), headers=headers)
        assert response.status_code == 401
        assert driver.error_shape_ok(response)


@pytest.mark.parametrize(
    ("crm", "header", "value", "status"),
    [
        ("reapit", "reapit-customer", "OTHER", 403),
        ("reapit", "api-version", "2019-01-01", 400),
        ("alto", "AgencyRef", "00000000-0000-0000-0000-000000000000", 403),
        ("street", "Accept", "application/json", 406),
    ],
)
def test_crm_specific_header_checks(driver_for: DriverFor, crm: str, header: str, value: str, status: int) -> None:
    driver = driver_for(crm)
    response = driver.get(driver.page_one(), headers={**driver.headers(), header: value})
    assert response.status_code == status
    assert driver.error_shape_ok(response)


def test_agentos_unknown_short_name_is_403(driver_for: DriverFor) -> None:
    driver = driver_for("agentos")
    response = driver.get((f"{driver.base}/v4/contacts/elsewhere/landlords/0/10", {}))
    assert response.status_code == 403
    assert "elsewhere" in response.json()["Message"]


@pytest.mark.parametrize(("crm", "path"), [("reapit", "/token"), ("alto", "/token"), ("openapi", "/oauth/token")])
def test_token_endpoint_refuses_wrong_secret_and_issues_expiring_bearer(
    driver_for: DriverFor, http: httpx.Client, control: SandboxControl, crm: str, path: str
) -> None:
    driver = driver_for(crm)
    creds = SANDBOX_CREDENTIALS[crm]
    form = {"grant_type": "client_credentials", "client_id": creds["client_id"]}
    refused = http.post(f"{driver.base}{path}", data=form, auth=(creds["client_id"], "wrong"))
    assert refused.status_code == 401 and driver.error_shape_ok(refused)
    control.token_ttl(crm, 1234)
    issued = http.post(f"{driver.base}{path}", data=form, auth=(creds["client_id"], creds["client_secret"])).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1234
    headers = {**driver.headers(), "Authorization": f"Bearer {issued['access_token']}"}
    assert driver.get(driver.page_one(), headers=headers).status_code == 200
    control.expire_tokens(crm)
    assert driver.get(driver.page_one(), headers=headers).status_code == 401


def test_issued_tokens_expire_after_their_ttl(driver_for: DriverFor, control: SandboxControl) -> None:
    driver = driver_for("alto")
    control.token_ttl("alto", 1)
    headers = driver.headers()
    assert driver.get(driver.page_one(), headers=headers).status_code == 200
    time.sleep(1.1)
    assert driver.get(driver.page_one(), headers=headers).status_code == 401


@pytest.mark.parametrize("stream", ["contacts", "leads"])
def test_paging_to_the_end_yields_exactly_n_records(driver: Driver, control: SandboxControl, stream: str) -> None:
    control.dataset(driver.crm, contacts=237, leads=101)
    records = driver.read(stream, size=20)
    ids = [external_id for external_id, _ in records]
    assert len(ids) == {"contacts": 237, "leads": 101}[stream]
    assert len(set(ids)) == len(ids)
    assert all(driver.usable(record) for _, record in records)


def test_split_endpoints_share_n_between_them(driver: Driver, control: SandboxControl) -> None:
    control.dataset(driver.crm, contacts=11, leads=7)
    for stream, total in (("contacts", 11), ("leads", 7)):
        per_endpoint = Counter(external_id.partition(":")[0] for external_id, _ in driver.read(stream))
        assert sum(per_endpoint.values()) == total
        if len(driver.endpoints[stream]) == 2:
            assert sorted(per_endpoint.values()) == [total // 2, total - total // 2]


def test_default_dataset_is_multi_page(driver: Driver) -> None:
    assert len(driver.read("contacts", size=100)) == 250
    assert len(driver.read("leads", size=100)) == 120


def test_modified_since_returns_only_touched_records(driver: Driver, control: SandboxControl) -> None:
    if not driver.has_since:
        pytest.skip("agentOS has no modified filter")
    assert driver.read("contacts", since=SINCE_AFTER_BASE) == []
    touched = control.touch(driver.crm, contacts=3, leads=2)
    for stream in ("contacts", "leads"):
        found = sorted(external_id for external_id, _ in driver.read(stream, since=SINCE_AFTER_BASE))
        assert found == sorted(touched[stream])
    # inclusive filter on the exact base time of a slot: slot 10 is 2026-01-01T00:10:00Z
    assert len(driver.read("contacts", since="2026-01-01T00:10:00Z", size=100)) == 250 - 10


def test_agentos_touch_changes_etag_and_delete_makes_records_disappear(
    driver_for: DriverFor, control: SandboxControl
) -> None:
    driver = driver_for("agentos")
    before = {eid: rec["ETag"] for eid, rec in driver.read("contacts", size=100)}
    touched = control.touch("agentos", contacts=4)["contacts"]
    after = {eid: rec["ETag"] for eid, rec in driver.read("contacts", size=100)}
    assert {eid for eid in before if before[eid] != after[eid]} == set(touched)
    deleted = control.delete("agentos", contacts=3)["contacts"]
    remaining = {eid for eid, _ in driver.read("contacts", size=100)}
    assert len(remaining) == 247 and not remaining & set(deleted)


def test_deletes_follow_each_crms_semantics(driver: Driver, control: SandboxControl) -> None:
    deleted = set(control.delete(driver.crm, contacts=2, leads=1)["contacts"])
    records = dict(driver.read("contacts", size=100))
    if driver.crm in ("agentos", "loop"):
        assert len(records) == 248 and not deleted & records.keys()
        return
    assert len(records) == 250
    for external_id in deleted:
        record = records[external_id]
        if driver.crm == "openapi":
            assert record["deleted_at"] is not None and record["updated_at"] == record["deleted_at"]
        elif driver.crm == "street":
            assert record["attributes"]["active"] is False
        else:
            assert record["active" if driver.crm == "reapit" else "isActive"] is False
    if driver.has_since:  # a deletion is a change, so incremental readers see it
        assert {eid for eid, _ in driver.read("contacts", since=SINCE_AFTER_BASE)} == deleted


def test_malformed_records_are_extra_and_unusable(driver: Driver, control: SandboxControl) -> None:
    control.dataset(driver.crm, contacts=40, leads=20, malformed_contacts=4, malformed_leads=3)
    for stream, good, bad in (("contacts", 40, 4), ("leads", 20, 3)):
        records = [record for _, record in driver.read(stream, size=15)]
        assert len(records) == good + bad
        assert sum(not driver.usable(record) for record in records) == bad


def test_leads_link_to_existing_contacts(driver: Driver) -> None:
    contacts = {record[driver.id_key] for _, record in driver.read("contacts", size=100)}
    link = {
        "reapit": lambda r: r["related"][0]["id"],
        "alto": lambda r: r["contact"]["id"],
        "street": lambda r: r["relationships"]["people"]["data"][0]["id"],
        "loop": lambda r: r["contactId"],
        "openapi": lambda r: r["contact_id"],
    }.get(driver.crm)
    if link is None:
        pytest.skip("agentOS applicants carry no contact link")
    leads = [record for _, record in driver.read("leads", size=100)]
    assert leads and all(link(record) in contacts for record in leads)


def test_datasets_are_deterministic_per_seed(driver: Driver, control: SandboxControl) -> None:
    first = driver.read("contacts", size=100)
    control.reset()
    driver.forget_token()
    assert driver.read("contacts", size=100) == first
    control.dataset(driver.crm, seed=7)
    assert driver.read("contacts", size=100) != first


def test_reapit_envelope_and_relative_next_link(driver_for: DriverFor, control: SandboxControl) -> None:
    driver = driver_for("reapit")
    body = driver.get((f"{driver.base}/contacts/", {"pageSize": 100, "pageNumber": 3, "sortBy": "modified"})).json()
    assert (body["pageNumber"], body["pageSize"], body["pageCount"]) == (3, 100, 50)
    assert (body["totalPageCount"], body["totalCount"]) == (3, 250)
    assert "next" not in body["_links"]
    first = driver.get((f"{driver.base}/contacts", {"pageSize": 100, "sortBy": "modified"})).json()
    assert first["_links"]["next"]["href"] == "/contacts/?pageSize=100&pageNumber=2&sortBy=modified"
    modified = [record["modified"] for record in first["_embedded"]]
    assert modified == sorted(modified)


@pytest.mark.parametrize(
    ("crm", "params"),
    [
        ("reapit", {"pageSize": 101}),
        ("alto", {"max-results": 251}),
        ("street", {"page[size]": 101}),
        ("loop", {"pageSize": 101}),
        ("openapi", {"limit": 501}),
    ],
)
def test_page_size_over_the_cap_is_refused(driver_for: DriverFor, crm: str, params: dict[str, int]) -> None:
    driver = driver_for(crm)
    url, _ = driver.page_one()
    response = driver.get((url, params))
    assert response.status_code == (422 if crm == "reapit" else 400)
    assert driver.error_shape_ok(response)


def test_agentos_count_over_1000_is_refused(driver_for: DriverFor) -> None:
    driver = driver_for("agentos")
    response = driver.get((f"{driver.base}/v4/contacts/sandbox/landlords/0/1001", {}))
    assert response.status_code == 400 and driver.error_shape_ok(response)


def test_openapi_cursor_is_keyset_and_expires_with_the_dataset(driver_for: DriverFor, control: SandboxControl) -> None:
    driver = driver_for("openapi")
    first = driver.get(driver.first("/contacts", None, 100)).json()
    cursor = first["meta"]["next_cursor"]
    touched = control.touch("openapi", contacts=5)["contacts"]  # moves 5 records to the end mid-read
    rest: list[dict[str, object]] = []
    request: tuple[str, dict[str, object]] | None = (f"{driver.base}/contacts", {"limit": 100, "cursor": cursor})
    while request is not None:
        body = driver.get(request).json()
        rest += body["data"]
        request = driver.next(request, body)
    keys = [(r["updated_at"], r["id"]) for r in first["data"] + rest]
    assert keys == sorted(keys[:100]) + sorted(keys[100:])
    assert {r["id"] for r in rest} >= set(touched)
    assert {r["id"] for r in first["data"] + rest} >= {f"con_{i:08d}" for i in range(250)}
    control.dataset("openapi", contacts=10)
    stale = driver.get((f"{driver.base}/contacts", {"cursor": cursor}))
    assert stale.status_code == 400 and stale.json()["type"].endswith("invalid-cursor")
    assert driver.error_shape_ok(stale)
