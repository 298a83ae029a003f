"""Next links only on the API's own origin (crm-apis.md, "Always page to the end"): a link anywhere else is
an error naming the CRM, and no request — no credential — is ever sent there."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from mock_crm import FAST, MOCK, ClientFactory, Handler, page

from crm_resources.core import CrmClient, CrmError, ErrorKind, HeaderAuth
from tests.support.http_capture import HttpCapture, Seen

SECRET = "k-3f9a-never-leaves-the-crm"


def two_pages(next_link: str) -> Handler:
    """A handler: page 1 links to `next_link`, page 2 ends the stream."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page", "1") == "1":
            return page([{"id": "a"}, {"id": "b"}], pages=2, next=next_link)
        return page([{"id": "c"}], pages=2)

    return handler


@pytest.mark.parametrize(
    "link",
    [
        "http://mock.test/api/contacts?page=2&size=2",  # absolute, same origin
        "http://MOCK.test:80/api/contacts?page=2&size=2",  # the same origin, spelt with case and default port
        "/api/contacts?page=2&size=2",  # root-relative
    ],
)
def test_a_next_link_on_the_apis_own_origin_is_followed(make_client: ClientFactory, link: str) -> None:
    sent: list[httpx.URL] = []
    handler = two_pages(link)

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return handler(request)

    client = make_client(recording)
    ids = [str(raw["id"]) for p in client.pages("contacts", None) for raw in p.records]
    assert ids == ["a", "b", "c"]
    assert {(u.scheme, u.host, u.port) for u in sent} == {("http", "mock.test", None)}


@pytest.mark.parametrize(
    "link",
    [
        "http://elsewhere.test/api/contacts?page=2&size=2",  # another host
        "http://mock.test:8443/api/contacts?page=2&size=2",  # another port
        "https://mock.test/api/contacts?page=2&size=2",  # another scheme
        "http://mock.test.elsewhere.test/api/contacts?page=2",  # a host that only starts the same
    ],
)
def test_a_next_link_to_another_origin_is_an_error_naming_the_crm_and_gets_no_request(
    make_client: ClientFactory, link: str
) -> None:
    sent: list[httpx.URL] = []
    handler = two_pages(link)

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return handler(request)

    client = make_client(recording)
    read: list[str] = []
    with pytest.raises(CrmError) as failed:
        for p in client.pages("contacts", None):
            read.extend(str(raw["id"]) for raw in p.records)
    assert read == ["a", "b"]  # the page before the link is handed over, to be written
    assert failed.value.kind is ErrorKind.BAD_RESPONSE and not failed.value.retryable
    assert failed.value.message.startswith("MockCRM sent a next link on /contacts that points to another server")
    assert "did not follow it" in failed.value.message and "credentials were not sent" in failed.value.message
    assert "page=2" not in failed.value.message  # an origin is named, never a path or query
    assert len(sent) == 1 and client.requests_made == 1  # page 1 only: nothing went to the link


def test_over_real_http_a_capture_server_on_another_loopback_port_receives_nothing() -> None:
    with HttpCapture() as capture:

        def crm(seen: Seen) -> tuple[int, object]:
            if seen.query.get("page") == "1":
                return 200, {"data": [{"id": "a"}], "pages": 2, "next": f"{capture.url}/api/contacts?page=2&size=2"}
            return 200, {"data": [{"id": "b"}], "pages": 2}

        with HttpCapture(crm) as server:
            spec = replace(MOCK, paginator=replace(MOCK.paginator, page_size=1))  # type: ignore[type-var]
            client = CrmClient(spec, f"{server.url}/api", HeaderAuth.bearer(SECRET), tuning=FAST)
            with client, pytest.raises(CrmError) as failed:
                list(client.pages("contacts", None))
        assert capture.requests == []
        assert [(s.path, s.headers.get("Authorization")) for s in server.requests] == [
            ("/api/contacts", f"Bearer {SECRET}")
        ]
        assert failed.value.kind is ErrorKind.BAD_RESPONSE
        assert capture.url in failed.value.message and SECRET not in failed.value.message
