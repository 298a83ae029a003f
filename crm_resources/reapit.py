"""Reapit Foundations: OAuth2 client credentials (NurtureHub's app), page numbers, `_embedded`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_resources import records as r
from crm_resources.core import (
    Connection,
    CrmResource,
    CrmSpec,
    Endpoint,
    OAuth2ClientCredentials,
    PageNumberPaginator,
    Rate,
)


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    return r.Contact(
        external_id=external_id,
        first_name=r.text(raw, "forename", external_id),
        last_name=r.text(raw, "surname", external_id),
        email=r.email(raw.get("email"), external_id),
        phone=r.phone(r.first_present(raw, ("mobilePhone", "homePhone", "workPhone")), external_id),
        marketing_consent=r.consent(raw.get("marketingConsent"), {"grant": "granted", "deny": "denied"}),
        source_updated_at=r.timestamp(raw, "modified", external_id),
        deleted=False,  # active=false is inactive, not deleted: kept with its raw record
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    related = raw.get("related")
    contact_id = (
        related[0].get("id") if isinstance(related, list) and related and isinstance(related[0], dict) else None
    )
    return r.Lead(
        external_id=external_id,
        contact_external_id=str(contact_id) if contact_id not in (None, "") else None,
        kind=r.lead_kind(raw.get("marketingMode"), {"buying": "sales", "renting": "lettings"}),
        status=None,  # Reapit applicants carry no status word
        source_updated_at=r.timestamp(raw, "modified", external_id),
        deleted=False,
        raw=raw,
    )


REAPIT = CrmSpec(
    crm="reapit",
    crm_name="Reapit",
    contacts=(Endpoint("/contacts/"),),
    leads=(Endpoint("/applicants/"),),
    paginator=PageNumberPaginator(
        "pageNumber", "pageSize", 100, total_pages="totalPageCount", next_link="_links.next.href"
    ),
    records="_embedded",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=Rate(20, 1.0),
    since_param="modifiedFrom",
    params={"sortBy": "modified"},
    headers={"api-version": "2020-01-31"},
    auth_message=lambda name, status: (
        "Reapit rejected NurtureHub's credentials — reconnect Reapit in your CRM settings"
    ),
)


class ReapitResource(CrmResource):
    """NurtureHub's Reapit app; each integration adds its customer id."""

    base_url: str = "https://platform.reapit.cloud"
    token_url: str = "https://connect.reapit.cloud/token"
    client_id: str = ""
    client_secret: str = ""

    spec = REAPIT
    settings_keys = ("customer_id",)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        auth = OAuth2ClientCredentials(self.token_url, self.client_id, self.client_secret, client_id_in_form=True)
        return self.base_url, auth, {"reapit-customer": settings["customer_id"]}, {}
