"""Reapit Foundations: OAuth client credentials, page-numbered HAL-ish envelopes sorted by modified."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item
from .simulator import Endpoint, InvalidParameter, Simulator, int_param, iso, since_param

CREDENTIALS = SANDBOX_CREDENTIALS["reapit"]
API_VERSION = "2020-01-31"
CONTACTS = Endpoint("contacts", "/contacts/")
APPLICANTS = Endpoint("leads", "/applicants/")
_CONSENT = {"granted": "grant", "denied": "deny", "unknown": "notAsked"}


class ReapitSimulator(Simulator):
    """``/reapit``: ``POST /token``, ``GET /contacts/``, ``GET /applicants/`` (20 requests/s)."""

    crm = "reapit"
    endpoints = (CONTACTS, APPLICANTS)
    ts_paths = {"contacts": ("modified",), "leads": ("modified",)}
    rate_limit = (20, 1.0)
    token_path = "/token"
    token_form_client_id = True

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"statusCode": status, "dateTime": iso(datetime.now(UTC)), "description": message}

    def invalid(self, exc: InvalidParameter) -> Response:
        """Reapit refuses bad parameters with 422 and a per-field ``errors`` list."""
        errors = [{"field": exc.field, "message": exc.message}]
        return self.error(422, "One or more parameters are invalid.", extra={"errors": errors})

    def authenticate(self, request: Request) -> Response | None:
        if not self.bearer_valid(request):
            return self.error(401, "The access token is missing, invalid or has expired.")
        if request.headers.get("api-version") != API_VERSION:
            return self.error(400, f"The api-version header is required and must be {API_VERSION}.")
        if request.headers.get("reapit-customer") != CREDENTIALS["customer_id"]:
            return self.error(403, "This app is not installed for the customer in the reapit-customer header.")
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """One page; query parameter names are case-insensitive, as on ASP.NET."""
        query = {key.lower(): value for key, value in request.query_params.items()}
        size = int_param(query.get("pagesize"), "pageSize", default=25, minimum=1, maximum=100)
        number = int_param(query.get("pagenumber"), "pageNumber", default=1, minimum=1, maximum=10_000_000)
        sort = query.get("sortby")
        if sort not in (None, "modified"):
            raise InvalidParameter("sortBy", "sortBy must be 'modified'")
        since_raw = query.get("modifiedfrom")
        page = self.numbered_page(
            request, endpoint, number=number, size=size, since=since_param(since_raw, "modifiedFrom")
        )
        extra = {key: value for key, value in (("sortBy", sort), ("modifiedFrom", since_raw)) if value}

        def href(page_number: int) -> dict[str, str]:
            return {"href": f"{endpoint.path}?{urlencode({'pageSize': size, 'pageNumber': page_number, **extra})}"}

        links = {"self": href(number), "first": href(1)}
        if number > 1:
            links["prev"] = href(number - 1)
        if page.next is not None:
            links["next"] = href(page.next)
        return self.send(
            {
                "_embedded": page.records,
                "pageNumber": number,
                "pageSize": size,
                "pageCount": len(page.records),
                "totalPageCount": page.pages,
                "totalCount": page.total,
                "_links": links,
            }
        )

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return f"{'SBC' if endpoint.stream == 'contacts' else 'SBA'}{26_000_000 + slot}"

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        record_id = self.record_id(endpoint, item.slot)
        common = {"id": record_id, "created": iso(item.created), "modified": iso(item.modified)}
        tail = {"active": item.deleted_at is None, "_eTag": self.etag(endpoint, item)}
        if endpoint is CONTACTS:
            person = self.person(item)
            return {
                **common,
                "title": person.title,
                "forename": person.first_name,
                "surname": person.last_name,
                "email": person.email,
                "mobilePhone": person.mobile,
                "homePhone": person.home,
                "workPhone": person.work,
                "marketingConsent": _CONSENT[person.consent],
                "officeIds": [f"OF{person.branch}"],
                **tail,
                "_links": {"self": {"href": f"/contacts/{record_id}"}},
            }
        enquiry = self.enquiry(item)
        renting = enquiry.kind == "lettings"
        contact_id, person = self.contact_id(enquiry), enquiry.person
        related = (
            []
            if contact_id is None
            else [
                {
                    "id": contact_id,
                    "name": f"{person.title} {person.first_name} {person.last_name}",
                    "type": "contact",
                    "email": person.email,
                }
            ]
        )
        return {
            **common,
            "marketingMode": "renting" if renting else "buying",
            "currency": "GBP",
            "buying": None if renting else {"priceFrom": enquiry.price_min, "priceTo": enquiry.price_max},
            "renting": {"rentFrom": enquiry.rent_min, "rentTo": enquiry.rent_max, "rentFrequency": "monthly"}
            if renting
            else None,
            "bedroomsMin": enquiry.beds_min,
            "bedroomsMax": enquiry.beds_max,
            "source": {"id": enquiry.source, "type": "source"},
            "related": related,
            **tail,
        }
