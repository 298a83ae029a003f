"""A tiny reference reader per CRM, written from crm-apis.md (not from the sandbox code), so the sandbox
suite can be parametrised by CRM: credentials, first page, next page, records and error shape.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from crm_sandbox import SANDBOX_CREDENTIALS

Request = tuple[str, dict[str, Any]]


class LoopDetected(Exception):
    """The reader was sent back to a page it had already read."""


class Driver(ABC):
    """A minimal, honest client of one CRM: credentials, first page, next page, records, error shape."""

    crm: ClassVar[str]
    endpoints: ClassVar[dict[str, list[tuple[str, str]]]]  # stream -> [(path, external id prefix)]
    id_key: ClassVar[str] = "id"
    ts_path: ClassVar[tuple[str, ...] | None] = None
    has_since: ClassVar[bool] = True

    def __init__(self, root_url: str, http: httpx.Client) -> None:
        self.base = f"{root_url}/{self.crm}"
        self.http = http
        self.creds = SANDBOX_CREDENTIALS[self.crm]
        self._token: str | None = None

    def forget_token(self) -> None:
        """Drop a cached OAuth token (after a sandbox reset revoked it)."""
        self._token = None

    def oauth(self, path: str, *, form_client_id: bool = False) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if form_client_id:
            form["client_id"] = self.creds["client_id"]
        return self.http.post(
            f"{self.base}{path}", data=form, auth=(self.creds["client_id"], self.creds["client_secret"])
        )

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """Valid credentials (fetching a token if the CRM uses OAuth)."""

    @abstractmethod
    def wrong_headers(self) -> dict[str, str]:
        """Headers with a wrong token/key."""

    @abstractmethod
    def first(self, path: str, since: str | None, size: int) -> Request:
        """The first page request."""

    @abstractmethod
    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        """The next page request, from the envelope, or None at the end."""

    @abstractmethod
    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of a page."""

    @abstractmethod
    def error_shape_ok(self, response: httpx.Response) -> bool:
        """Whether an error response has this CRM's error body."""

    def get(self, request: Request, headers: dict[str, str] | None = None) -> httpx.Response:
        url, params = request
        return self.http.get(url, params=params or None, headers=self.headers() if headers is None else headers)

    def page_one(self, stream: str = "contacts", size: int = 5) -> Request:
        return self.first(self.endpoints[stream][0][0], None, size)

    def read(self, stream: str, since: str | None = None, size: int = 50) -> list[tuple[str, dict[str, Any]]]:
        """Every (external id, record) of a stream, paging to the end; raises LoopDetected on a loop."""
        out: list[tuple[str, dict[str, Any]]] = []
        for path, prefix in self.endpoints[stream]:
            requested: set[str] = set()
            seen_ids: set[str] = set()
            request: Request | None = self.first(path, since, size)
            while request is not None:
                key = json.dumps(request, sort_keys=True)
                if key in requested:
                    raise LoopDetected(key)
                requested.add(key)
                response = self.get(request)
                response.raise_for_status()
                body = response.json()
                records = self.records(body)
                ids = [json.dumps(record.get(self.id_key), sort_keys=True) for record in records]
                if ids and all(i in seen_ids for i in ids):
                    raise LoopDetected(f"page of already-seen records at {request}")
                seen_ids.update(ids)
                out.extend((f"{prefix}{record.get(self.id_key)}", record) for record in records)
                request = self.next(request, body)
        return out

    def usable(self, record: dict[str, Any]) -> bool:
        """What a client would accept: a string id and, where the CRM has one, a parseable timestamp."""
        if not isinstance(record.get(self.id_key), str) or not record[self.id_key]:
            return False
        if self.ts_path is None:
            return True
        value: Any = record
        for key in self.ts_path:
            value = value[key]
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True


class Reapit(Driver):
    crm = "reapit"
    endpoints = {"contacts": [("/contacts/", "")], "leads": [("/applicants/", "")]}
    ts_path = ("modified",)

    def headers(self) -> dict[str, str]:
        self._token = self._token or self.oauth("/token", form_client_id=True).json()["access_token"]
        return {"Authorization": f"Bearer {self._token}", "api-version": "2020-01-31", "reapit-customer": "SBOX"}

    def wrong_headers(self) -> dict[str, str]:
        return {**self.headers(), "Authorization": "Bearer not-a-token"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        params: dict[str, Any] = {"pageSize": size, "pageNumber": 1, "sortBy": "modified"}
        return self.base + path, params | ({"modifiedFrom": since} if since else {})

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        link = body["_links"].get("next")
        if link is None or body["pageNumber"] >= body["totalPageCount"]:
            return None
        return self.base + link["href"], {}

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        assert {"pageNumber", "pageSize", "pageCount", "totalPageCount", "totalCount", "_links"} <= body.keys()
        return body["_embedded"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        body = response.json()
        return body["statusCode"] == response.status_code and {"dateTime", "description"} <= body.keys()


class Alto(Driver):
    crm = "alto"
    endpoints = {"contacts": [("/contacts/all", "")], "leads": [("/leads", "")]}
    ts_path = ("modifiedAt",)

    def headers(self) -> dict[str, str]:
        self._token = self._token or self.oauth("/token").json()["access_token"]
        return {"Authorization": f"Bearer {self._token}", "AgencyRef": self.creds["agency_ref"]}

    def wrong_headers(self) -> dict[str, str]:
        return {**self.headers(), "Authorization": "Bearer not-a-token"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        return self.base + path, {"max-results": size} | ({"modified-from": since} if since else {})

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        token = body["meta"]["nextToken"]
        return None if token is None else (request[0], {**request[1], "next-token": token})

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return body["items"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        error = response.json()["errors"][0]
        return isinstance(error["code"], str) and isinstance(error["message"], str)

    def usable(self, record: dict[str, Any]) -> bool:  # leads carry modifiedDate, contacts modifiedAt
        stamp = record.get("modifiedAt", record.get("modifiedDate"))
        return super().usable({**record, "modifiedAt": stamp})


class Street(Driver):
    crm = "street"
    endpoints = {
        "contacts": [("/people", "")],
        "leads": [("/sales-applicants", "sales:"), ("/lettings-applicants", "lettings:")],
    }
    ts_path = ("attributes", "updated_at")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds['api_token']}", "Accept": "application/vnd.api+json"}

    def wrong_headers(self) -> dict[str, str]:
        return {**self.headers(), "Authorization": "Bearer wrong"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        params: dict[str, Any] = {"page[number]": 1, "page[size]": size}
        return self.base + path, params | ({"filter[updated_from]": since} if since else {})

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        link, pagination = body["links"].get("next"), body["meta"]["pagination"]
        if link is None or pagination["current_page"] >= pagination["total_pages"]:
            return None
        assert urlsplit(link).scheme == "http"  # absolute
        return link, {}

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        assert {"total", "count", "per_page", "current_page", "total_pages"} <= body["meta"]["pagination"].keys()
        return body["data"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        error = response.json()["errors"][0]
        return error["status"] == str(response.status_code) and {"title", "detail", "code"} <= error.keys()


class AgentOs(Driver):
    crm = "agentos"
    _base = "/v4/contacts/sandbox"
    endpoints = {
        "contacts": [(f"{_base}/landlords", "landlord:"), (f"{_base}/tenants", "tenant:")],
        "leads": [(f"{_base}/applicants/lettings", "lettings:"), (f"{_base}/applicants/sales", "sales:")],
    }
    id_key = "OID"
    has_since = False

    def headers(self) -> dict[str, str]:
        return {"api_key": self.creds["api_key"]}

    def wrong_headers(self) -> dict[str, str]:
        return {"api_key": "wrong"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        return f"{self.base}{path}/0/{size}", {}

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        head, offset, count = request[0].rsplit("/", 2)
        following = int(offset) + len(body["Data"])
        return None if following >= body["Count"] or not body["Data"] else (f"{head}/{following}/{count}", {})

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return body["Data"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        return isinstance(response.json()["Message"], str)


class Loop(Driver):
    crm = "loop"
    endpoints = {"contacts": [("/contacts", "")], "leads": [("/buyers", "buyer:"), ("/renters", "renter:")]}
    ts_path = ("updatedAt",)

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.creds["api_key"]}

    def wrong_headers(self) -> dict[str, str]:
        return {"x-api-key": "wrong"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        return self.base + path, {"pageNumber": 1, "pageSize": size} | ({"updatedSince": since} if since else {})

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        number = body["pageNumber"]
        if number * body["pageSize"] >= body["totalCount"]:
            return None
        return request[0], {**request[1], "pageNumber": number + 1}

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return body["results"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        return isinstance(response.json()["message"], str)


class OpenApi(Driver):
    crm = "openapi"
    endpoints = {"contacts": [("/contacts", "")], "leads": [("/leads", "")]}
    ts_path = ("updated_at",)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds['token']}"}

    def wrong_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer wrong"}

    def first(self, path: str, since: str | None, size: int) -> Request:
        return self.base + path, {"limit": size} | ({"updated_since": since} if since else {})

    def next(self, request: Request, body: dict[str, Any]) -> Request | None:
        cursor = body["meta"]["next_cursor"]
        return (request[0], {**request[1], "cursor": cursor}) if body["meta"]["has_more"] else None

    def records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return body["data"]

    def error_shape_ok(self, response: httpx.Response) -> bool:
        body = response.json()
        return (
            response.headers["content-type"].startswith("application/problem+json")
            and body["status"] == response.status_code
            and {"type", "title", "detail"} <= body.keys()
        )


DRIVERS: dict[str, type[Driver]] = {d.crm: d for d in (Reapit, Alto, Street, AgentOs, Loop, OpenApi)}
