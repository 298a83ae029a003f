"""NurtureHub Open API: Bearer (static or client-credentials), keyset cursors, tombstones, RFC 9457."""

from __future__ import annotations

import bisect
import re
from datetime import datetime
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .credentials import SANDBOX_CREDENTIALS
from .datasets import Item, Person
from .simulator import Endpoint, InvalidParameter, Simulator, int_param, iso, since_param

PROBLEM_BASE = "https://api.nurturehub.co.uk/problems/"
CONTACTS = Endpoint("contacts", "/contacts")
LEADS = Endpoint("leads", "/leads")
_TYPES = {
    "sales": "sales_applicant",
    "lettings": "lettings_applicant",
    "valuation": "valuation",
    "enquiry": "general_enquiry",
}


class OpenApiSimulator(Simulator):
    """``/openapi``: ``POST /oauth/token`` (optional), ``GET /contacts``, ``GET /leads``.

    Records come in ``(updated_at, id)`` order; the cursor is the last key served, so records touched
    while a client pages simply move to the end.
    """

    crm = "openapi"
    endpoints = (CONTACTS, LEADS)
    ts_paths = {"contacts": ("updated_at",), "leads": ("updated_at",)}
    always_retry_after = True
    token_path = "/oauth/token"
    error_media_type = "application/problem+json"

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        slug = re.sub(r"(?<!^)(?=[A-Z])", "-", code).lower().replace("_", "-")
        return {"type": PROBLEM_BASE + slug, "title": HTTPStatus(status).phrase, "status": status, "detail": message}

    def invalid(self, exc: InvalidParameter) -> Response:
        """A bad cursor gets type ``…/invalid-cursor``: the client restarts from ``updated_since``."""
        return self.error(400, exc.message, "InvalidCursor" if exc.field == "cursor" else "InvalidParameter")

    def authenticate(self, request: Request) -> Response | None:
        if not self.bearer_valid(request, SANDBOX_CREDENTIALS["openapi"]["token"]):
            return self.error(
                401, "The bearer token is missing, invalid or has expired.", headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    def listing(self, request: Request, endpoint: Endpoint) -> Response:
        """``{"data", "meta": {"next_cursor", "has_more"}}``; ``updated_since`` is inclusive."""
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", default=100, minimum=1, maximum=500)
        view = self.view(endpoint, since_param(query.get("updated_since"), "updated_since"))
        data = self.state.stream(endpoint.stream)
        raw = query.get("cursor")
        start = 0
        if raw:
            cursor = self.read_cursor(raw, "cursor")
            if cursor.get("t") is not None:
                key = (datetime.fromisoformat(cursor["t"]), int(cursor["s"]))
                start = bisect.bisect_right(view, key, key=lambda slot: (data.modified(slot), slot))
        records = self.records(endpoint, view, start, start + limit)
        if self.repeating(request):
            next_cursor: str | None = raw or self.make_cursor(t=None, s=None)
        elif start + limit < len(view):
            last = view[start + limit - 1]
            next_cursor = self.make_cursor(t=data.modified(last).isoformat(), s=last)
        else:
            next_cursor = None
        return self.send({"data": records, "meta": {"next_cursor": next_cursor, "has_more": next_cursor is not None}})

    def record_id(self, endpoint: Endpoint, slot: int) -> str:
        return f"{'con' if endpoint.stream == 'contacts' else 'lead'}_{slot:08d}"

    def render(self, endpoint: Endpoint, item: Item) -> dict[str, Any]:
        stamps = {
            "created_at": iso(item.created),
            "updated_at": iso(item.modified),
            "deleted_at": item.deleted_at and iso(item.deleted_at),
        }
        if endpoint is CONTACTS:
            person = self.person(item)
            return {
                "id": self.record_id(endpoint, item.slot),
                "first_name": person.first_name,
                "last_name": person.last_name,
                "emails": [] if person.email is None else [{"value": person.email, "primary": True}],
                "phones": _phones(person),
                "marketing_consent": {"status": person.consent},
                **stamps,
            }
        enquiry = self.enquiry(item)
        return {
            "id": self.record_id(endpoint, item.slot),
            "contact_id": self.contact_id(enquiry),
            "type": _TYPES[enquiry.kind],
            "status": enquiry.status,
            "source": enquiry.source,
            **stamps,
        }


def _phones(person: Person) -> list[dict[str, Any]]:
    numbers = [("mobile", person.mobile), ("home", person.home), ("work", person.work)]
    present = [(kind, value) for kind, value in numbers if value]
    return [{"value": value, "type": kind, "primary": index == 0} for index, (kind, value) in enumerate(present)]
