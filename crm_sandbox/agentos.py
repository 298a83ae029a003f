"""agentOS (LetMC): ``api_key`` header, offset/count in the path, no modified filter, ETags.

Only consenting contacts are listed, so a deleted record simply disappears. 50 requests/min on a
rolling window; three 429s in a row and the key is blocked (403) until the window clears.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item
from .simulator import Endpoint, Simulator, int_param

CREDENTIALS = SANDBOX_CREDENTIALS["agentos"]
_BASE = "/v4/contacts/{short_name}"
_PAGE = "{offset}/{count}"
LANDLORDS = Endpoint("contacts", f"{_BASE}/landlords/{_PAGE}", 0, "landlord:")
TENANTS = Endpoint("contacts", f"{_BASE}/tenants/{_PAGE}", 1, "tenant:")
LETTINGS = Endpoint("leads", f"{_BASE}/applicants/lettings/{_PAGE}", 0, "lettings:")
SALES = Endpoint("leads", f"{_BASE}/applicants/sales/{_PAGE}", 1, "sales:")
_TAGS = {LANDLORDS: "LL", TENANTS: "TN", LETTINGS: "AL", SALES: "AS"}


class AgentOsSimulator(Simulator):
    """``/agentos``: landlords + tenants (contacts), lettings + sales applicants (leads).

    Each stream is split in two: the first endpoint named serves the first half of the slots.
    """

    crm = "agentos"
    endpoints = (LANDLORDS, TENANTS, LETTINGS, SALES)
    id_path = ("OID",)
    rate_limit = (50, 60.0)
    block_after = 3
    limit_retry_after = False
    order = "id"
    hide_deleted = True

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"Message": message}

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("api_key") != CREDENTIALS["api_key"]:
            return self.error(401, "Authorization has been denied for this request.")
        short_name = request.path_params["short_name"]
        if short_name != CREDENTIALS["short_name"]:
            return self.error(403, f"This API key is not authorised for company '{short_name}'.")
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """``{"Count": total, "Data": [...]}``; under ``repeat_next`` it serves offset 0 and claims more."""
        params = request.path_params
        offset = int_param(params["offset"], "offset", default=0, minimum=0, maximum=10**9)
        count = int_param(params["count"], "count", default=0, minimum=1, maximum=1000)
        view = self.view(endpoint)
        if self.repeating(request):
            return self.send(
                {"Count": max(len(view), offset + count + 1), "Data": self.records(endpoint, view, 0, count)}
            )
        return self.send({"Count": len(view), "Data": self.records(endpoint, view, offset, offset + count)})

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return self.stable_uuid(endpoint, slot)

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        applicant = endpoint.stream == "leads"
        person = self.enquiry(item).person if applicant else self.person(item)
        record: dict[str, Any] = {
            "OID": self.record_id(endpoint, item.slot),
            "ETag": self.etag(endpoint, item),
            "GlobalReference": f"{_TAGS[endpoint]}{item.slot:06d}",
            "Title": person.title,
            "Forename": person.first_name,
            "Surname": person.last_name,
            "EmailAddress": person.email or "",
            "MobilePhone": person.mobile or "",
            "HomePhone": person.home or "",
            "WorkPhone": person.work or "",
            "BranchID": f"BR{person.branch:03d}",
        }
        if applicant:
            record["ApplicantType"] = "Sales" if endpoint is SALES else "Lettings"
            record["PropertyOID"] = self.stable_uuid(endpoint, item.slot + 5_000_000) if item.slot % 3 == 0 else None
        return record
