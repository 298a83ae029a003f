"""agentOS (LetMC): an `api_key` header, the agency's shortName and `/{offset}/{count}` in the path,
two endpoints per stream, and no modified-since filter: every sync reads everything, and the upsert's
content hash (the raw record carries its `ETag`) writes only what changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from crm_resources import records as r
from crm_resources.core import Connection, CrmResource, CrmSpec, Endpoint, HeaderAuth, OffsetPathPaginator, Rate

_BASE = "/v4/contacts/{short_name}"
_PAGE = "{offset}/{count}"
PHONES = ("MobilePhone", "HomePhone", "WorkPhone")


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "OID", endpoint.prefix)
    return r.Contact(
        external_id=external_id,
        first_name=r.text(raw, "Forename", external_id),
        last_name=r.text(raw, "Surname", external_id),
        email=r.email(raw.get("EmailAddress"), external_id),
        phone=r.phone(r.first_present(raw, PHONES), external_id),
        marketing_consent="granted",  # agentOS lists only contacts with third-party marketing consent
        source_updated_at=None,  # agentOS records carry no timestamps
        deleted=False,  # a contact gone from a full read is marked deleted by the engine
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "OID", endpoint.prefix)
    return r.Lead(
        external_id=external_id,
        contact_external_id=None,  # an applicant is its own contact record: agentOS gives no link
        kind=endpoint.prefix.rstrip(":"),  # the endpoint says it: lettings or sales
        status=None,  # agentOS applicants carry no status
        source_updated_at=None,
        deleted=False,
        raw=raw,
    )


AGENTOS = CrmSpec(
    crm="agentos",
    crm_name="agentOS",
    contacts=(
        Endpoint(f"{_BASE}/landlords/{_PAGE}", prefix="landlord:"),
        Endpoint(f"{_BASE}/tenants/{_PAGE}", prefix="tenant:"),
    ),
    leads=(
        Endpoint(f"{_BASE}/applicants/lettings/{_PAGE}", prefix="lettings:"),
        Endpoint(f"{_BASE}/applicants/sales/{_PAGE}", prefix="sales:"),
    ),
    paginator=OffsetPathPaginator(1000, total_count="Count"),  # count <= 1000
    records="Data",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=Rate(50, 60.0),  # 50 requests/min per key, rolling window
    since_param=None,
    default_retry_after=60.0,  # agentOS asks for 60 s when a 429 carries no Retry-After
    blocked_after_rate_limit=True,  # a 403 after repeated 429s: stop, don't hammer
    missing_means_deleted=True,  # a contact that disappears may have withdrawn consent
)


class AgentOsResource(CrmResource):
    """Each integration brings its API key and the agency's shortName."""

    base_url: str = "https://live-api.letmc.com"

    spec = AGENTOS
    settings_keys = ("short_name",)
    credential_sets = (("api_key",),)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        path_vars = {"short_name": quote(settings["short_name"], safe="")}
        return self.base_url, HeaderAuth("api_key", credentials["api_key"]), {}, path_vars
