"""Alto (Zoopla): OAuth client credentials plus ``AgencyRef``, cursor paging by ``next-token``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item, make_person
from .simulator import Endpoint, Simulator, int_param, iso, since_param

CREDENTIALS = SANDBOX_CREDENTIALS["alto"]
CONTACTS = Endpoint("contacts", "/contacts/all")
LEADS = Endpoint("leads", "/leads")
_STATUS = {"new": "New", "contacted": "Contacted", "viewing": "InProgress", "offer": "InProgress", "closed": "Closed"}
_CATEGORY = {0: ("Applicant", ["Buyer"]), 1: ("Applicant", ["Tenant"]), 2: ("Vendor", ["Seller"]), 3: ("Landlord", [])}


class AltoSimulator(Simulator):
    """``/alto``: ``POST /token``, ``GET /contacts/all``, ``GET /leads`` (no published rate limit)."""

    crm = "alto"
    endpoints = (CONTACTS, LEADS)
    ts_paths = {"contacts": ("modifiedAt",), "leads": ("modifiedDate",)}
    jwt_tokens = True
    token_path = "/token"

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"errors": [{"code": code, "message": message}]}

    def authenticate(self, request: Request) -> Response | None:
        if not self.bearer_valid(request):
            return self.error(401, "The bearer token is missing, invalid or has expired.")
        if request.headers.get("agencyref") != CREDENTIALS["agency_ref"]:
            return self.error(403, "The AgencyRef header does not name an agency this client may access.")
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """A page from a ``next-token`` (which carries the original ``modified-from``) or from the start."""
        query = request.query_params
        size = int_param(query.get("max-results"), "max-results", default=25, minimum=1, maximum=250)
        token = query.get("next-token")
        if token:
            cursor = self.read_cursor(token, "next-token")
            offset, since_raw = int(cursor["o"]), cursor.get("s")
        else:
            offset, since_raw = 0, query.get("modified-from")
        since = since_param(since_raw, "modified-from")
        view = self.view(endpoint, since)
        records = self.records(endpoint, view, offset, offset + size)
        next_offset = offset if self.repeating(request) else offset + size
        more = self.repeating(request) or next_offset < len(view)
        next_token = self.make_cursor(o=next_offset, s=since and since.isoformat()) if more else None
        return self.send({"meta": {"nextToken": next_token}, "items": records})

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return str((4_000_000 if endpoint.stream == "contacts" else 7_000_000) + slot)

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        if endpoint is CONTACTS:
            person = self.person(item)
            category, persona = _CATEGORY[item.slot % 4]
            people = [
                {
                    "title": person.title,
                    "foreName": person.first_name,
                    "surname": person.last_name,
                    "phoneNumber": person.mobile or person.home,
                    "emailAddress": person.email,
                }
            ]
            if item.slot % 5 == 0:
                partner = make_person(self.state.data_seed, item.slot + 1_000_000)
                people.append({**people[0], "foreName": partner.first_name, "emailAddress": partner.email})
            return {
                "id": self.record_id(endpoint, item.slot),
                "contactType": {"category": category, "persona": persona},
                "contactInformation": people,
                "branchId": str(person.branch),
                "isActive": item.deleted_at is None,
                "createdAt": iso(item.created, "ms"),
                "modifiedAt": iso(item.modified, "ms"),
            }
        enquiry = self.enquiry(item)
        contact_id = self.contact_id(enquiry)
        return {
            "id": self.record_id(endpoint, item.slot),
            "branchId": str(enquiry.branch),
            "leadStatus": _STATUS[enquiry.status],
            "leadSource": enquiry.source,
            "enquiryType": _enquiry_type(enquiry.kind, item.slot),
            "enquiryDate": iso(item.created, "ms"),
            "createdDate": iso(item.created, "ms"),
            "modifiedDate": iso(item.modified, "ms"),
            "isActive": item.deleted_at is None,
            "contact": None if contact_id is None else {"id": contact_id},
        }


def _enquiry_type(kind: str, slot: int) -> str:
    if kind == "valuation":
        return "ValuationLettings" if slot % 3 == 0 else "ValuationSales"
    return {"sales": "LookingToBuy", "lettings": "LookingToRent"}.get(kind, "GeneralEnquiry")
