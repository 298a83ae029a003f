"""Loop: ``x-api-key`` header, page-numbered ``results`` envelope; deleted records disappear."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item
from .simulator import Endpoint, Simulator, int_param, iso, since_param

CONTACTS = Endpoint("contacts", "/contacts")
BUYERS = Endpoint("leads", "/buyers", 0, "buyer:")
RENTERS = Endpoint("leads", "/renters", 1, "renter:")
_STATUS = {"new": "New", "contacted": "Contacted", "viewing": "Viewing", "offer": "Offer Made", "closed": "Closed"}


class LoopSimulator(Simulator):
    """``/loop``: ``GET /contacts``, ``/buyers`` (first half of the lead slots), ``/renters`` (the rest)."""

    crm = "loop"
    endpoints = (CONTACTS, BUYERS, RENTERS)
    ts_paths = {"contacts": ("updatedAt",), "leads": ("updatedAt",)}
    hide_deleted = True

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"message": message}

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("x-api-key") != SANDBOX_CREDENTIALS["loop"]["api_key"]:
            return self.error(401, "Unauthorized")
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """Under ``repeat_next`` the answer is page 1 again, calling itself page 1, with more to come."""
        query = request.query_params
        size = int_param(query.get("pageSize"), "pageSize", default=20, minimum=1, maximum=100)
        number = int_param(query.get("pageNumber"), "pageNumber", default=1, minimum=1, maximum=10_000_000)
        since = since_param(query.get("updatedSince"), "updatedSince")
        repeat = self.repeating(request)
        page = self.numbered_page(request, endpoint, number=1 if repeat else number, size=size, since=since)
        total = max(page.total, number * size + 1) if repeat else page.total
        return self.send({"results": page.records, "totalCount": total, "pageNumber": page.number, "pageSize": size})

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return self.stable_uuid(endpoint, slot)

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        lead = endpoint.stream == "leads"
        enquiry = self.enquiry(item) if lead else None
        person = enquiry.person if enquiry else self.person(item)
        record: dict[str, Any] = {
            "id": self.record_id(endpoint, item.slot),
            "firstName": person.first_name,
            "lastName": person.last_name,
            "email": person.email,
            "phone": person.mobile or person.home,
            "marketingConsent": person.consent == "granted",
            "createdAt": iso(item.created, "ms"),
            "updatedAt": iso(item.modified, "ms"),
        }
        if enquiry:
            buyer = endpoint is BUYERS
            record["contactId"] = self.contact_id(enquiry)
            record["status"] = _STATUS[enquiry.status]
            record["minPrice"] = enquiry.price_min if buyer else enquiry.rent_min
            record["maxPrice"] = enquiry.price_max if buyer else enquiry.rent_max
        return record
