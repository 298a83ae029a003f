"""The benchmarks' fast CRM server (bench/fast_crm.py), in its own process over real HTTP.

What the sync benchmark relies on: every page size a client asks for serves every record once, in
`(updated_at, id)` order; the engine's own mappers accept every record (nothing skipped); each round's
version changes every record; the incremental filters find the touched records; and the auth rules hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bench import fast_crm
from crm_resources import openapi, reapit
from crm_resources.core import Endpoint

CONTACTS, LEADS = 1_200, 600


@pytest.fixture(scope="module", params=["openapi", "reapit"])
def server(request: pytest.FixtureRequest) -> Iterator[fast_crm.FastCrm]:
    with fast_crm.fast_crm_process(request.param, CONTACTS, LEADS) as running:
        yield running


def _client(server: fast_crm.FastCrm, version: str) -> httpx.Client:
    if server.crm == "openapi":
        return httpx.Client(
            base_url=server.base_url(version), headers={"Authorization": f"Bearer {fast_crm.OPENAPI_TOKEN}"}
        )
    token = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", "client_id": fast_crm.REAPIT_CLIENT[0]},
        auth=fast_crm.REAPIT_CLIENT,
    )
    token.raise_for_status()
    headers = {
        "Authorization": f"Bearer {token.json()['access_token']}",
        "api-version": fast_crm.API_VERSION,
        "reapit-customer": fast_crm.REAPIT_CUSTOMER,
    }
    return httpx.Client(base_url=server.base_url(version), headers=headers)


def _records(server: fast_crm.FastCrm, version: str, stream: str, size: int, since: str | None = None) -> list[Any]:
    """Every record of one stream, paged as the engine pages (cursor or page number)."""
    out: list[Any] = []
    with _client(server, version) as client:
        if server.crm == "openapi":
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": size}
                params |= {"cursor": cursor} if cursor else {}
                params |= {"updated_since": since} if since else {}
                body = client.get(f"/{stream}", params=params).raise_for_status().json()
                out += body["data"]
                cursor = body["meta"]["next_cursor"]
                assert body["meta"]["has_more"] is (cursor is not None)
                if cursor is None:
                    return out
        path = "/contacts/" if stream == "contacts" else "/applicants/"
        number = 1
        while True:
            params = {"pageSize": size, "pageNumber": number, "sortBy": "modified"}
            params |= {"modifiedFrom": since} if since else {}
            body = client.get(path, params=params).raise_for_status().json()
            out += body["_embedded"]
            assert body["totalCount"] == len(out) or "next" in body["_links"]
            if number >= body["totalPageCount"]:
                assert "next" not in body["_links"]
                return out
            number += 1


def _stamp(server: fast_crm.FastCrm, record: dict[str, Any]) -> str:
    return str(record["updated_at" if server.crm == "openapi" else "modified"])


def _sizes(server: fast_crm.FastCrm) -> list[int]:
    return [100, 500, 37] if server.crm == "openapi" else [100, 7]  # the pre-rendered sizes and one other


def test_every_page_size_serves_every_record_once_in_order(server: fast_crm.FastCrm) -> None:
    for stream, count in (("contacts", CONTACTS), ("leads", LEADS)):
        for size in _sizes(server):
            records = _records(server, "r1", stream, size)
            assert len({r["id"] for r in records}) == len(records) == count, (stream, size)
            keys = [(_stamp(server, r), r["id"]) for r in records]
            assert keys == sorted(keys)


def test_the_engine_maps_every_record_of_every_version(server: fast_crm.FastCrm) -> None:
    module = openapi if server.crm == "openapi" else reapit
    endpoint = Endpoint("/contacts")
    for version in fast_crm.VERSIONS:
        for record in _records(server, version, "contacts", 100):
            module.map_contact(record, endpoint)  # SkipRecord would fail the test
        for record in _records(server, version, "leads", 100):
            lead = module.map_lead(record, endpoint)
            assert lead.contact_external_id is not None


def test_each_round_changes_every_record(server: fast_crm.FastCrm) -> None:
    for stream in ("contacts", "leads"):
        rounds = [{r["id"]: r for r in _records(server, v, stream, 100)} for v in ("r1", "r2", "r3")]
        for before, after in zip(rounds, rounds[1:], strict=False):
            assert before.keys() == after.keys()
            for record_id, old in before.items():
                new = after[record_id]
                assert _stamp(server, new) > _stamp(server, old)
                changed = {k for k in old if old[k] != new[k]} - {"updated_at", "modified"}
                assert changed, (stream, record_id)


def test_the_incremental_filter_finds_the_touched_records(server: fast_crm.FastCrm) -> None:
    for stream, count in (("contacts", CONTACTS), ("leads", LEADS)):
        full = _records(server, "r3", stream, 100)
        newest = max(_stamp(server, r) for r in full)
        found = _records(server, "t3", stream, 100, since=newest)
        assert all(_stamp(server, r) >= newest for r in found)  # inclusive: r1's newest may come back too
        touched = [r for r in found if _stamp(server, r) > newest]
        assert len(touched) == len(fast_crm.touched_slots(count)) and len(found) <= len(touched) + 1
        assert len(_records(server, "t3", stream, 100)) == count
    httpx.get(f"{server.root_url}/_requests")  # reset
    path = "/contacts" if server.crm == "openapi" else "/contacts/"
    with _client(server, "t3") as client:
        client.get(path, params={"limit": 1} if server.crm == "openapi" else {"pageSize": 1}).raise_for_status()
        client.get(path, params={"limit": 100} if server.crm == "openapi" else {"pageSize": 100})
    served = f"/{server.crm}/t3{path}"
    counted = httpx.get(f"{server.root_url}/_requests").json()
    counted.pop("/reapit/token", None)  # _client fetched its token
    assert counted == {served: 2, fast_crm.SIZE_ONE.format(path=served): 1}
    assert httpx.get(f"{server.root_url}/_requests").json() == {}


def test_requests_without_the_right_credentials_are_refused(server: fast_crm.FastCrm) -> None:
    path = "/contacts" if server.crm == "openapi" else "/contacts/"
    assert httpx.get(server.base_url("r1") + path).status_code == 401
    if server.crm == "reapit":
        with _client(server, "r1") as client:
            assert client.get(path, headers={"reapit-customer": "OTHER"}).status_code == 403
            assert client.get(path, headers={"api-version": "1999"}).status_code == 400
        wrong = httpx.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("x", "y"))
        assert wrong.status_code == 401
    else:
        expired = httpx.get(
            server.base_url("r1") + path,
            params={"cursor": "bogus"},
            headers={"Authorization": f"Bearer {fast_crm.OPENAPI_TOKEN}"},
        )
        assert expired.status_code == 400 and expired.json()["type"].endswith("invalid-cursor")


def test_the_undecoded_fetch_pages_as_the_decoded_one(server: fast_crm.FastCrm) -> None:
    """The proof's undecoded figure is only honest if it fetched the very pages the decoded one did."""
    for stream in ("contacts", "leads"):
        for size in _sizes(server):
            pages: list[bytes] = []
            _, decoded_requests, _ = fast_crm.bare_fetch(server, "r1", stream, size, keep=pages, parse="orjson")
            undecoded: list[bytes] = []
            _, requests, _ = fast_crm.bare_fetch(server, "r1", stream, size, keep=undecoded, parse="bytes")
            assert requests == decoded_requests > 1 and undecoded == pages, (stream, size)
            for page in pages:  # the paging fields read from the tail are the decoded page's own
                fields, body = fast_crm._paging_fields(page), orjson.loads(page)
                assert {key: body[key] for key in fields if key not in ("data", "_embedded")} == {
                    key: value for key, value in fields.items() if key not in ("data", "_embedded")
                }
