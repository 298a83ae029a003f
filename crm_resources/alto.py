"""Alto (Zoopla): OAuth2 client credentials (NurtureHub's app) plus the agency's `AgencyRef` header,
`next-token` cursors, an `items` envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_resources import records as r
from crm_resources.core import (
    Connection,
    CrmResource,
    CrmSpec,
    CursorPaginator,
    Endpoint,
    OAuth2ClientCredentials,
    Rate,
)

ENQUIRY_TYPES = {"LookingToBuy": "sales", "LookingToRent": "lettings", "Valuation…": "valuation"}


def _primary_person(raw: Mapping[str, Any], external_id: str) -> Mapping[str, Any]:
    """Alto's primary person is the first `contactInformation` entry (crm-apis.md)."""
    people = raw.get("contactInformation")
    if people is None:
        return {}
    if not isinstance(people, list) or not all(isinstance(p, Mapping) for p in people):
        raise r.SkipRecord("contact details are not a list", external_id)
    return people[0] if people else {}


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    person = _primary_person(raw, external_id)
    return r.Contact(
        external_id=external_id,
        first_name=r.text(person, "foreName", external_id),
        last_name=r.text(person, "surname", external_id),
        email=r.email(person.get("emailAddress"), external_id),
        phone=r.phone(person.get("phoneNumber"), external_id),
        marketing_consent="unknown",  # Alto's list has no consent field
        source_updated_at=r.timestamp(raw, "modifiedAt", external_id),
        deleted=False,  # isActive=false is inactive, not deleted: kept with its raw record
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    contact = raw.get("contact")
    contact_id = contact.get("id") if isinstance(contact, Mapping) else None
    return r.Lead(
        external_id=external_id,
        contact_external_id=str(contact_id) if isinstance(contact_id, str | int) and contact_id != "" else None,
        kind=r.lead_kind(raw.get("enquiryType"), ENQUIRY_TYPES),
        status=r.text(raw, "leadStatus", external_id),
        source_updated_at=r.timestamp(raw, "modifiedDate", external_id),
        deleted=False,
        raw=raw,
    )


def auth_message(name: str, status: int) -> str:
    """401 is the token (NurtureHub's app access); 403 is this agency's AgencyRef or scope."""
    if status == 403:
        return (
            "Alto refused NurtureHub access to this agency (its AgencyRef was not accepted) — check the Alto "
            "AgencyRef, make sure the agency has enabled NurtureHub in Alto, and reconnect Alto in your CRM settings"
        )
    return "Alto rejected NurtureHub's credentials — reconnect Alto in your CRM settings"


ALTO = CrmSpec(
    crm="alto",
    crm_name="Alto",
    contacts=(Endpoint("/contacts/all"),),
    leads=(Endpoint("/leads"),),
    paginator=CursorPaginator("next-token", "meta.nextToken", "max-results", 250),
    records="items",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=Rate(5, 1.0),  # none published: throttle to 5 requests/s
    since_param="modified-from",
    auth_message=auth_message,
)


class AltoResource(CrmResource):
    """NurtureHub's Alto app (env); each integration adds its AgencyRef."""

    base_url: str = "https://api.alto.zoopla.co.uk"
    client_id: str = ""
    client_secret: str = ""

    spec = ALTO
    settings_keys = ("agency_ref",)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        base_url = self.base_url.rstrip("/")
        auth = OAuth2ClientCredentials(f"{base_url}/token", self.client_id, self.client_secret)
        return base_url, auth, {"AgencyRef": settings["agency_ref"]}, {}
