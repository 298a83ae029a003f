"""Street against the sandbox over real loopback HTTP: the contract every CRM meets (crm_contract.py), and its next
links and its incremental window in id order."""

from __future__ import annotations

import httpx
import pytest
from crm_clients import CONTACTS, FAST, LEADS, client, integration, read_all, sync
from crm_contract import CrmContract
from sqlalchemy import func, select

from crm_resources.street import StreetResource
from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import db
from nurturehub_pipelines.store.tables import contacts, leads, sync_cursors


class TestStreet(CrmContract):
    CRM = "street"


@pytest.mark.parametrize(
    "link",
    [
        "http://street.test/open-api/v1/people?page%5Bnumber%5D=2&page%5Bsize%5D=2",  # absolute
        "/open-api/v1/people?page%5Bnumber%5D=2&page%5Bsize%5D=2",  # root-relative, carries the base path
        "/people?page[number]=2&page[size]=2",  # relative to the base URL
    ],
)
def test_street_follows_a_next_link_however_it_is_written_and_stops_at_total_pages(link: str) -> None:
    asked: list[str] = []

    def street(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path + "?" + request.url.query.decode())
        number = int(request.url.params["page[number]"])
        record = {"id": str(number), "type": "person", "attributes": {"updated_at": "2026-01-01T00:00:00Z"}}
        links = {"next": link if number == 1 else link.replace("=2", "=3")}  # page 2 still says "next"
        meta = {"pagination": {"total": 2, "count": 1, "per_page": 1, "current_page": number, "total_pages": 2}}
        return httpx.Response(200, json={"data": [record], "links": links, "meta": meta})

    res = StreetResource(base_url="http://street.test/open-api/v1", **FAST)
    res._transport = httpx.MockTransport(street)
    with res.client({}, {"api_token": "t"}) as c:
        ids = [p.external_id for p in read_all(c, "contacts")]
    assert ids == ["1", "2"]  # total_pages ends it, though page 2 still links to a page 3
    assert [a.split("?")[0] for a in asked] == ["/open-api/v1/people"] * 2


def test_street_incremental_window_in_no_order_catches_every_change_once(
    db_url: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    """Street pages in id order, so changed records are scattered over the window's pages; the
    cursor moves to the newest `updated_at` only after the whole window is read."""
    control.dataset("street", contacts=CONTACTS, leads=LEADS)
    found = integration(db_url, "street", sandbox)
    with client("street", sandbox, page_size=2) as c:
        sync(db_url, found, c, full=True)
        touched = control.touch("street", contacts=7, leads=5)
        control.clear_requests("street")
        changed = sync(db_url, found, c, full=False)
        window = [q for q in control.requests("street") if "filter[updated_from]" in q["query"]]
        again = sync(db_url, found, c, full=False)
    assert changed["contact_import"].affected == 7 and changed["lead_update"].affected == 5
    assert changed["contact_import"].read >= 7 and changed["lead_update"].read >= 5  # plus the look-back
    assert len(window) >= 4 + 3  # several pages per window: a gap would have shown
    assert again["contact_import"].affected == again["lead_update"].affected == 0
    with db.engine(db_url).connect() as conn:
        newest = conn.execute(select(func.max(contacts.c.source_updated_at))).scalar_one()
        mark = conn.execute(select(sync_cursors.c.high_water).where(sync_cursors.c.stream == "contacts")).scalar_one()
        stored = set(conn.execute(select(leads.c.external_id)).scalars())
    assert mark.replace(tzinfo=None) == newest.replace(tzinfo=None)
    assert set(touched["leads"]) <= stored
