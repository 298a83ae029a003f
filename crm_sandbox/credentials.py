"""The sandbox's fixed credentials, shared by the simulators, the demo and the tests."""

from __future__ import annotations

from typing import Final

SANDBOX_CREDENTIALS: Final[dict[str, dict[str, str]]] = {
    "reapit": {
        "client_id": "sandbox-reapit-client",
        "client_secret": "sandbox-reapit-secret",
        "customer_id": "SBOX",
    },
    "alto": {
        "client_id": "sandbox-alto-client",
        "client_secret": "sandbox-alto-secret",
        "agency_ref": "0f8fad5b-d9cb-469f-a165-70867728950e",
    },
    "street": {"api_token": "sandbox-street-token"},
    "agentos": {"short_name": "sandbox", "api_key": "sandbox-agentos-key"},
    "loop": {"api_key": "sandbox-loop-key"},
    "openapi": {
        "token": "sandbox-openapi-token",
        "client_id": "sandbox-openapi-client",
        "client_secret": "sandbox-openapi-secret",
    },
}
"""Per CRM: the values an integration needs to reach that simulator (names as in DESIGN.md)."""
