"""Street: JSON:API (`application/vnd.api+json`) with a per-agency bearer token, numbered pages that
end at `meta.pagination.total_pages`, and sales and lettings applicants as one leads stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_resources import records as r
from crm_resources.core import Connection, CrmResource, CrmSpec, Endpoint, HeaderAuth, PageNumberPaginator, Rate, dig

APPLICANT_TYPES = {"sales": "sales", "lettings": "lettings"}


def _attributes(raw: Mapping[str, Any], external_id: str) -> Mapping[str, Any]:
    """A JSON:API resource keeps its fields under `attributes`."""
    attributes = raw.get("attributes")
    if not isinstance(attributes, Mapping):
        raise r.SkipRecord("attributes is not an object", external_id)
    return attributes


def _first_person(raw: Mapping[str, Any]) -> str | None:
    """The applicant's first linked person (`relationships.people.data[]`), if any."""
    people = dig(raw, "relationships.people.data")
    first = people[0] if isinstance(people, list) and people else None
    person_id = first.get("id") if isinstance(first, Mapping) else None
    return str(person_id) if isinstance(person_id, str | int) and person_id != "" else None


def map_contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    attributes = _attributes(raw, external_id)
    consent = attributes.get("marketing_consent")
    return r.Contact(
        external_id=external_id,
        first_name=r.text(attributes, "first_name", external_id),
        last_name=r.text(attributes, "last_name", external_id),
        email=r.email(r.primary_value(attributes.get("email_addresses"), external_id), external_id),
        phone=r.phone(r.primary_value(attributes.get("telephone_numbers"), external_id), external_id),
        marketing_consent=r.consent(consent if isinstance(consent, bool) else None, {True: "granted", False: "denied"}),
        source_updated_at=r.timestamp(attributes, "updated_at", external_id),
        deleted=False,  # active=false is inactive, not deleted
        raw=raw,
    )


def map_lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    attributes = _attributes(raw, external_id)
    return r.Lead(
        external_id=external_id,
        contact_external_id=_first_person(raw),
        kind=r.lead_kind(attributes.get("applicant_type"), APPLICANT_TYPES),
        status=None,  # Street applicants carry a lead_rating (hot/warm/cold), not a status
        source_updated_at=r.timestamp(attributes, "updated_at", external_id),
        deleted=False,
        raw=raw,
    )


STREET = CrmSpec(
    crm="street",
    crm_name="Street",
    contacts=(Endpoint("/people"),),
    leads=(Endpoint("/sales-applicants", prefix="sales:"), Endpoint("/lettings-applicants", prefix="lettings:")),
    paginator=PageNumberPaginator(
        "page[number]", "page[size]", 100, total_pages="meta.pagination.total_pages", next_link="links.next"
    ),
    records="data",
    map_contact=map_contact,
    map_lead=map_lead,
    rate=Rate(600, 60.0),
    # No sort order: the engine reads the whole filter window before it moves the cursor to the
    # newest `updated_at` it saw, so order within the window cannot open a gap.
    since_param="filter[updated_from]",
    headers={"Accept": "application/vnd.api+json"},
)


class StreetResource(CrmResource):
    """Each integration brings its own API token."""

    base_url: str = "https://street.co.uk/open-api/v1"

    spec = STREET
    credential_sets = (("api_token",),)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        return self.base_url, HeaderAuth.bearer(credentials["api_token"]), {}, {}
