"""Loop: the whole of Loop's (thinly published, subject to change) shape in one small module.

An `x-api-key` header per team, page numbers ending by `totalCount`, and buyers + renters as the
leads stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_resources import records as r
from crm_resources.core import Connection, CrmResource, CrmSpec, Endpoint, HeaderAuth, PageNumberPaginator, Rate

BUYERS = Endpoint("/buyers", prefix="buyer:")
RENTERS = Endpoint("/renters", prefix="renter:")
KINDS = {BUYERS.prefix: "sales", RENTERS.prefix: "lettings"}


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    consent = raw.get("marketingConsent")
    return r.Contact(
        external_id=external_id,
        first_name=r.text(raw, "firstName", external_id),
        last_name=r.text(raw, "lastName", external_id),
        email=r.email(raw.get("email"), external_id),
        phone=r.phone(raw.get("phone"), external_id),
        marketing_consent=r.consent(consent if isinstance(consent, bool) else None, {True: "granted", False: "denied"}),
        source_updated_at=r.timestamp(raw, "updatedAt", external_id),
        deleted=False,
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    contact_id = raw.get("contactId")
    return r.Lead(
        external_id=external_id,
        contact_external_id=str(contact_id) if isinstance(contact_id, str | int) and contact_id != "" else None,
        kind=KINDS.get(endpoint.prefix, "unknown"),
        status=r.text(raw, "status", external_id),
        source_updated_at=r.timestamp(raw, "updatedAt", external_id),
        deleted=False,
        raw=raw,
    )


LOOP = CrmSpec(
    crm="loop",
    crm_name="Loop",
    contacts=(Endpoint("/contacts"),),
    leads=(BUYERS, RENTERS),
    paginator=PageNumberPaginator("pageNumber", "pageSize", 100, total_count="totalCount"),
    records="results",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=Rate(5, 1.0),  # none published: throttle to 5 requests/s
    since_param="updatedSince",
)


class LoopResource(CrmResource):
    """Each integration (one per Loop team) brings its team's API key."""

    base_url: str = "https://apiv3.loop.software/api"

    spec = LOOP
    credential_sets = (("api_key",),)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        return self.base_url, HeaderAuth("x-api-key", credentials["api_key"]), {}, {}
