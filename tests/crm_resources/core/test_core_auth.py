"""Auth: a static header, and OAuth2 client credentials with a token cached until it expires and one
fresh token after a 401 (a second 401 is the CRM rejecting the credentials)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx
import pytest
from mock_crm import ClientFactory, page, read_ids

from crm_resources.core import CrmError, ErrorKind, HeaderAuth, OAuth2ClientCredentials

TOKEN_URL = "http://mock.test/token"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """Issues token-1, token-2, ...; answers the first `data_401s` data calls with 401, then a page."""

    def __init__(self, *, expires_in: int = 3600, data_401s: int = 0) -> None:
        self.issued = 0
        self.expires_in = expires_in
        self.data_401s = data_401s
        self.log: list[str] = []
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.issued += 1
            self.log.append("token")
            self.forms.append(parse_qs(request.content.decode()))
            assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"id:secret").decode()
            return httpx.Response(200, json={"access_token": f"token-{self.issued}", "expires_in": self.expires_in})
        self.log.append(f"data:{request.headers['Authorization']}")
        if self.data_401s:
            self.data_401s -= 1
            return httpx.Response(401, json={"error": "invalid_token"})
        return page([{"id": "1"}])


def oauth(clock: Clock | None = None, **options: bool) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(TOKEN_URL, "id", "secret", clock=clock or Clock(), **options)


def test_header_auth_sets_its_header_and_bearer_is_the_authorization_header() -> None:
    seen: list[httpx.Headers] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200)

    for auth in (HeaderAuth("api_key", "k1"), HeaderAuth.bearer("t1")):
        with httpx.Client(transport=httpx.MockTransport(crm), auth=auth) as http:
            http.get("http://mock.test/x")
    assert seen[0]["api_key"] == "k1" and "Authorization" not in seen[0]
    assert seen[1]["Authorization"] == "Bearer t1"


def test_the_token_is_cached_until_it_is_about_to_expire() -> None:
    server, clock = TokenServer(expires_in=600), Clock()
    with httpx.Client(transport=httpx.MockTransport(server), auth=oauth(clock)) as http:
        for _ in range(3):
            http.get("http://mock.test/contacts")
        clock.now = 539.0  # renewed a minute early: still good at 539 s of 600
        http.get("http://mock.test/contacts")
        clock.now = 541.0
        http.get("http://mock.test/contacts")
    assert server.log == ["token", *["data:Bearer token-1"] * 4, "token", "data:Bearer token-2"]
    assert server.forms[0] == {"grant_type": ["client_credentials"]}


def test_a_short_lived_token_is_renewed_at_ninety_percent_of_its_life() -> None:
    server, clock = TokenServer(expires_in=30), Clock()
    with httpx.Client(transport=httpx.MockTransport(server), auth=oauth(clock)) as http:
        http.get("http://mock.test/contacts")
        clock.now = 26.0
        http.get("http://mock.test/contacts")
        clock.now = 28.0
        http.get("http://mock.test/contacts")
    assert server.log.count("token") == 2 and server.log[-1] == "data:Bearer token-2"


def test_client_id_in_form_when_the_crm_wants_it() -> None:
    server = TokenServer()
    with httpx.Client(transport=httpx.MockTransport(server), auth=oauth(client_id_in_form=True)) as http:
        http.get("http://mock.test/contacts")
    assert server.forms[0] == {"grant_type": ["client_credentials"], "client_id": ["id"]}


def test_a_401_gets_one_fresh_token_and_one_more_try(make_client: ClientFactory) -> None:
    server = TokenServer(data_401s=1)
    client = make_client(server, auth=oauth())
    assert read_ids(client) == ["1"]
    assert server.log == ["token", "data:Bearer token-1", "token", "data:Bearer token-2"]


def test_a_second_401_is_the_crm_rejecting_the_credentials(make_client: ClientFactory, sleeps: list[float]) -> None:
    server = TokenServer(data_401s=2)
    client = make_client(server, auth=oauth())
    with pytest.raises(CrmError) as caught:
        read_ids(client)
    assert caught.value.kind is ErrorKind.AUTH
    assert "MockCRM rejected the credentials — reconnect MockCRM" in caught.value.message
    assert server.log == ["token", "data:Bearer token-1", "token", "data:Bearer token-2"]  # never retried
    assert sleeps == []


def test_the_auth_step_fetches_a_token_and_says_for_how_long(make_client: ClientFactory) -> None:
    server = TokenServer(expires_in=1800)
    client = make_client(server, auth=oauth())
    assert client.authenticate() == "MockCRM access token obtained (valid for 30 min)"
    assert server.log == ["token"]
    read_ids(client)
    assert server.log == ["token", "data:Bearer token-1"]  # the step's token serves the reads


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(400, json={"error": "invalid_grant"}),
        httpx.Response(200, json={"token_type": "Bearer"}),  # no token in it
    ],
    ids=["401", "400", "200-without-token"],
)
def test_a_refused_grant_is_an_auth_error(make_client: ClientFactory, answer: httpx.Response) -> None:
    asked: list[str] = []

    def crm(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return answer

    client = make_client(crm, auth=oauth())
    with pytest.raises(CrmError) as caught:
        client.authenticate()
    assert caught.value.kind is ErrorKind.AUTH and "reconnect MockCRM" in caught.value.message
    assert asked == ["/token"]
