"""MockCRM: a made-up CRM for the core's unit tests, served by `httpx.MockTransport` (no sandbox, no sockets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from crm_resources import records as r
from crm_resources.core import CrmClient, CrmSpec, Endpoint, PageNumberPaginator, Tuning

Handler = Callable[[httpx.Request], httpx.Response]


def _contact(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Contact:
    external_id = r.record_id(raw, "id", endpoint.prefix)
    return r.Contact(external_id, None, None, None, None, "unknown", None, False, raw)


def _lead(raw: Mapping[str, Any], endpoint: Endpoint) -> r.Lead:
    return r.Lead(r.record_id(raw, "id", endpoint.prefix), None, "enquiry", None, None, False, raw)


# Page numbers with a declared page count, like Reapit: the envelope is {"data": [...], "pages": n}.
MOCK = CrmSpec(
    crm="mock",
    crm_name="MockCRM",
    contacts=(Endpoint("/contacts"),),
    leads=(Endpoint("/leads"),),
    paginator=PageNumberPaginator("page", "size", 2, total_pages="pages", next_link="next"),
    records="data",
    map_contact=_contact,
    map_lead=_lead,
    rate=None,
    since_param="since",
    default_retry_after=5.0,
)

# Real retries, no real waiting: `sleeps` records every wait instead.
FAST = Tuning(max_attempts=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.02, max_wait_seconds=30.0)

ClientFactory = Callable[..., CrmClient]


def page(records: list[Any], pages: int = 1, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": records, "pages": pages, **extra})


def read_ids(client: CrmClient, stream: str = "contacts") -> list[str]:
    return [str(raw["id"]) for p in client.pages(stream, None) for raw in p.records]
