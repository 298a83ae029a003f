"""Alto against the sandbox over real loopback HTTP: the contract every CRM meets (crm_contract.py), and its two
kinds of refusal and error body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from crm_clients import FAST, client, read_all
from crm_contract import CrmContract

from crm_resources.core import CrmError, ErrorKind
from crm_resources.registry import REGISTRY
from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer


class TestAlto(CrmContract):
    CRM = "alto"


def test_alto_401_and_403_each_say_what_to_do(sandbox: SandboxServer, control: SandboxControl) -> None:
    """401 is the token: one fresh token, then the app credentials are rejected. 403 is the AgencyRef."""
    control.fault("alto", "unauthorized", stream="contacts", times=-1)
    with client("alto", sandbox) as c, pytest.raises(CrmError) as token:
        c.authenticate()
        read_all(c, "contacts")
    assert [q["path"] for q in control.requests("alto")] == ["/token", "/contacts/all", "/token", "/contacts/all"]

    control.reset()
    with client("alto", sandbox, settings={"agency_ref": "not-this-agency"}) as c, pytest.raises(CrmError) as agency:
        c.authenticate()
        read_all(c, "contacts")
    assert [q["status"] for q in control.requests("alto")] == [200, 403]

    assert token.value.kind is agency.value.kind is ErrorKind.AUTH
    assert token.value.message != agency.value.message
    assert "Alto" in token.value.message and "reconnect" in token.value.message
    assert "AgencyRef" in agency.value.message and "AgencyRef" not in token.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"errors": [{"code": "ServerError", "message": "Alto is having a moment"}]},
        {"type": "about:blank", "title": "Server Error", "status": 500, "detail": "Alto is having a moment"},
    ],
    ids=["errors", "problem-details"],
)
def test_alto_error_words_come_from_either_error_body(body: dict[str, Any]) -> None:
    def alto(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        return httpx.Response(500, json=body)

    res = REGISTRY["alto"](base_url="http://alto.test", client_id="i", client_secret="s", **FAST)
    res._transport = httpx.MockTransport(alto)
    with res.client({"agency_ref": "a"}, {}) as c, pytest.raises(CrmError) as caught:
        read_all(c, "contacts")
    assert "Alto answered /contacts/all with HTTP 500 (Alto is having a moment)" in caught.value.message
