"""Street: JSON:API with a per-agency Bearer token; pages come in id order, not modified order."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item, Person
from .simulator import Endpoint, Simulator, int_param, iso, since_param

JSON_API = "application/vnd.api+json"
PEOPLE = Endpoint("contacts", "/people")
SALES = Endpoint("leads", "/sales-applicants", 0, "sales:")
LETTINGS = Endpoint("leads", "/lettings-applicants", 1, "lettings:")
_CONSENT = {"granted": True, "denied": False, "unknown": None}


class StreetSimulator(Simulator):
    """``/street``: ``GET /people``, ``/sales-applicants``, ``/lettings-applicants`` (600 GET/min).

    Leads are split: sales applicants are the first half of the lead slots, lettings the second.
    """

    crm = "street"
    endpoints = (PEOPLE, SALES, LETTINGS)
    ts_paths = {"contacts": ("attributes", "updated_at"), "leads": ("attributes", "updated_at")}
    rate_limit = (600, 60.0)
    order = "id"
    media_type = JSON_API
    error_media_type = JSON_API

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {
            "errors": [{"title": HTTPStatus(status).phrase, "detail": message, "code": code, "status": str(status)}]
        }

    def authenticate(self, request: Request) -> Response | None:
        if not self.bearer_valid(request, SANDBOX_CREDENTIALS["street"]["api_token"]):
            return self.error(401, "The API token is missing or invalid.")
        if JSON_API not in request.headers.get("accept", ""):
            return self.error(406, f"Requests must accept {JSON_API}.", "NotAcceptable")
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """A JSON:API page with absolute links; ``next`` is absent on the last page."""
        query = request.query_params
        size = int_param(query.get("page[size]"), "page[size]", default=20, minimum=1, maximum=100)
        number = int_param(query.get("page[number]"), "page[number]", default=1, minimum=1, maximum=10_000_000)
        since_raw = query.get("filter[updated_from]")
        page = self.numbered_page(
            request, endpoint, number=number, size=size, since=since_param(since_raw, "filter[updated_from]")
        )
        extra = {"filter[updated_from]": since_raw} if since_raw else {}
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"

        def url(page_number: int) -> str:
            return f"{base}?{urlencode({'page[number]': page_number, 'page[size]': size, **extra})}"

        links = {"self": url(number), "first": url(1), "last": url(max(1, page.pages))}
        if number > 1:
            links["prev"] = url(number - 1)
        if page.next is not None:
            links["next"] = url(page.next)
        pagination = {
            "total": page.total,
            "count": len(page.records),
            "per_page": size,
            "current_page": number,
            "total_pages": page.pages,
        }
        return self.send({"data": page.records, "links": links, "meta": {"pagination": pagination}})

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return self.stable_uuid(endpoint, slot)

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        stamps = {"created_at": iso(item.created, "us"), "updated_at": iso(item.modified, "us")}
        if endpoint is PEOPLE:
            person = self.person(item)
            return {
                "id": self.record_id(endpoint, item.slot),
                "type": "person",
                "attributes": {
                    "title": person.title,
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "email_addresses": _emails(person, item.slot),
                    "telephone_numbers": _phones(person, item.slot),
                    "marketing_consent": _CONSENT[person.consent],
                    "active": item.deleted_at is None,
                    **stamps,
                },
                "relationships": {"branch": {"data": {"type": "branch", "id": str(person.branch)}}},
            }
        enquiry = self.enquiry(item)
        kind = "sales" if endpoint is SALES else "lettings"
        contact_id = self.contact_id(enquiry)
        sales = endpoint is SALES
        return {
            "id": self.record_id(endpoint, item.slot),
            "type": f"{kind}-applicant",
            "attributes": {
                "applicant_type": kind,
                "lead_rating": enquiry.rating,
                "active": item.deleted_at is None,
                "requirements": {
                    "min_price": enquiry.price_min if sales else enquiry.rent_min,
                    "max_price": enquiry.price_max if sales else enquiry.rent_max,
                    "min_bedrooms": enquiry.beds_min,
                },
                **stamps,
            },
            "relationships": {
                "people": {"data": [] if contact_id is None else [{"type": "person", "id": contact_id}]},
            },
        }


def _emails(person: Person, slot: int) -> list[dict[str, Any]]:
    """Every fourth person lists a non-primary work address first, so 'primary' matters."""
    if person.email is None:
        return []
    primary = {"value": person.email, "primary": True}
    return (
        [{"value": f"{person.last_name.lower()}.work@example.co.uk", "primary": False}, primary]
        if (slot % 4 == 0)
        else [primary]
    )


def _phones(person: Person, slot: int) -> list[dict[str, Any]]:
    """Mobile is primary; odd slots list the home number first."""
    numbers = [(kind, value) for kind, value in (("mobile", person.mobile), ("home", person.home)) if value]
    if slot % 2:
        numbers.reverse()
    primary_kind = "mobile" if person.mobile else numbers[0][0] if numbers else None
    return [{"value": value, "type": kind, "primary": kind == primary_kind} for kind, value in numbers]
