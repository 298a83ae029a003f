"""The NurtureHub Open API, for any other CRM: bearer or client credentials, opaque cursors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from crm_resources import records as r
from crm_resources.core import (
    Connection,
    CrmResource,
    CrmSpec,
    CursorPaginator,
    Endpoint,
    HeaderAuth,
    OAuth2ClientCredentials,
)

LEAD_TYPES = {
    "sales_applicant": "sales",
    "lettings_applicant": "lettings",
    "valuation": "valuation",
    "general_enquiry": "enquiry",
}


def _consent(raw: Mapping[str, Any]) -> str:
    value = raw.get("marketing_consent")
    status = value.get("status") if r.is_object(value) else None
    return r.consent(status, {"granted": "granted", "denied": "denied"})


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    return r.Contact(
        external_id=external_id,
        first_name=r.text(raw, "first_name", external_id),
        last_name=r.text(raw, "last_name", external_id),
        email=r.email(r.primary_value(raw.get("emails"), external_id), external_id),
        phone=r.phone(r.primary_value(raw.get("phones"), external_id), external_id),
        marketing_consent=_consent(raw),
        source_updated_at=r.timestamp(raw, "updated_at", external_id),
        deleted=r.timestamp(raw, "deleted_at", external_id, required=False) is not None,
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    contact_id = raw.get("contact_id")
    return r.Lead(
        external_id=external_id,
        contact_external_id=str(contact_id) if contact_id not in (None, "") else None,
        kind=r.lead_kind(raw.get("type"), LEAD_TYPES),
        status=r.text(raw, "status", external_id),
        source_updated_at=r.timestamp(raw, "updated_at", external_id),
        deleted=r.timestamp(raw, "deleted_at", external_id, required=False) is not None,
        raw=raw,
    )


def expired_cursor(response: httpx.Response) -> bool:
    """400 with a problem `type` ending in invalid-cursor: restart from updated_since."""
    if response.status_code != 400:
        return False
    try:
        problem_type = response.json().get("type", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(problem_type, str) and problem_type.rstrip("/").endswith("invalid-cursor")


OPENAPI = CrmSpec(
    crm="openapi",
    crm_name="Open API",
    contacts=(Endpoint("/contacts"),),
    leads=(Endpoint("/leads"),),
    paginator=CursorPaginator("cursor", "meta.next_cursor", "limit", 500, has_more="meta.has_more"),  # limit <= 500
    records="data",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=None,  # none published; every 429 carries Retry-After, which the core honours
    since_param="updated_since",
    restart_paging=expired_cursor,
)


class OpenApiResource(CrmResource):
    """Each integration brings its own base URL and token (or client id and secret)."""

    spec = OPENAPI
    settings_keys = ("base_url",)
    credential_sets = (("token",), ("client_id", "client_secret"))

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        base_url = settings["base_url"].rstrip("/")
        auth: httpx.Auth
        if credentials.get("token"):
            auth = HeaderAuth.bearer(credentials["token"])
        else:
            auth = OAuth2ClientCredentials(
                f"{base_url}/oauth/token", credentials["client_id"], credentials["client_secret"]
            )
        return base_url, auth, {}, {}
