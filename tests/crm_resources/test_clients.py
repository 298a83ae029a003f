"""The six CRM clients against the sandbox over real loopback HTTP: auth, paging to the end, mapping,
the words of a refusal, and agentOS's read-everything-write-what-changed and rate limit."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crm_resources import records as r
from crm_resources.core import CrmClient, CrmError, CrmResource, ErrorKind
from crm_resources.registry import CRMS, REGISTRY
from crm_resources.street import StreetResource
from crm_sandbox.control import SandboxControl
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.tables import contacts, leads, sync_cursors
from nurturehub_pipelines.sync.engine import StepResult, SyncSession

# Real retries and backoff, scaled down so a fault costs milliseconds.
FAST: dict[str, Any] = {
    "timeout_seconds": 2.0,
    "max_attempts": 3,
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "default_retry_after_seconds": 0.05,
}
CONTACTS, LEADS = 47, 31  # odd sizes: both endpoints of a split stream end on a short page
PAGE = 10

# crm-apis.md, as data: the id prefixes of each stream, and the lead kind each prefix implies.
PREFIXES: dict[str, tuple[set[str], set[str]]] = {
    "agentos": ({"landlord:", "tenant:"}, {"lettings:", "sales:"}),
    "street": ({""}, {"sales:", "lettings:"}),
    "loop": ({""}, {"buyer:", "renter:"}),
    "reapit": ({""}, {""}),
    "alto": ({""}, {""}),
    "openapi": ({""}, {""}),
}
PREFIX_KINDS = {"lettings:": "lettings", "sales:": "sales", "buyer:": "sales", "renter:": "lettings"}


def _primary(entries: Any) -> Any:
    if not entries:
        return None
    return next((e for e in entries if e.get("primary") is True), entries[0]).get("value")


def _first(raw: Mapping[str, Any], *keys: str) -> Any:
    return next((raw[k] for k in keys if raw.get(k)), None)


def _alto_person(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return (raw.get("contactInformation") or [{}])[0]


# The primary email and phone, as crm-apis.md says each CRM gives them.
PRIMARY: dict[str, Any] = {
    "reapit": lambda raw: (raw.get("email"), _first(raw, "mobilePhone", "homePhone", "workPhone")),
    "alto": lambda raw: (_alto_person(raw).get("emailAddress"), _alto_person(raw).get("phoneNumber")),
    "agentos": lambda raw: (raw.get("EmailAddress"), _first(raw, "MobilePhone", "HomePhone", "WorkPhone")),
    "loop": lambda raw: (raw.get("email"), raw.get("phone")),
    "street": lambda raw: (
        _primary(raw["attributes"].get("email_addresses")),
        _primary(raw["attributes"].get("telephone_numbers")),
    ),
    "openapi": lambda raw: (_primary(raw.get("emails")), _primary(raw.get("phones"))),
}
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def control(sandbox: SandboxServer) -> Iterator[SandboxControl]:
    with SandboxControl(sandbox.root_url) as ctl:
        ctl.reset()
        yield ctl


def resource(crm: str, sandbox: SandboxServer, **tuning: Any) -> CrmResource:
    """The CRM's resource pointed at the sandbox, with NurtureHub's app credentials where it has them."""
    cls = REGISTRY[crm]
    urls = sandbox.base_urls()
    values: dict[str, Any] = {}
    if "base_url" in cls.model_fields:
        values["base_url"] = urls[f"{crm.upper()}_BASE_URL"]
    if "token_url" in cls.model_fields:
        values["token_url"] = urls[f"{crm.upper()}_TOKEN_URL"]
    for key in ("client_id", "client_secret"):
        if key in cls.model_fields:
            values[key] = SANDBOX_CREDENTIALS[crm][key]
    return cls(**{**values, **FAST, **tuning})


def connection_values(crm: str, sandbox: SandboxServer) -> tuple[dict[str, str], dict[str, str]]:
    cls = REGISTRY[crm]
    given = {**SANDBOX_CREDENTIALS[crm], "base_url": sandbox.base_urls()["OPENAPI_BASE_URL"]}
    return {k: given[k] for k in cls.settings_keys}, {k: given[k] for k in cls.credential_sets[0]}


def client(
    crm: str,
    sandbox: SandboxServer,
    *,
    settings: dict[str, str] | None = None,
    credentials: dict[str, str] | None = None,
    **tuning: Any,
) -> CrmClient:
    default_settings, default_credentials = connection_values(crm, sandbox)
    return resource(crm, sandbox, **tuning).client(
        {**default_settings, **(settings or {})}, {**default_credentials, **(credentials or {})}
    )


def read_all(c: CrmClient, stream: str) -> list[Any]:
    mapper = c.spec.map_contact if stream == "contacts" else c.spec.map_lead
    return [mapper(raw, page.endpoint) for page in c.pages(stream, None) for raw in page.records]


def prefix_of(external_id: str) -> str:
    return external_id.split(":", 1)[0] + ":" if ":" in external_id else ""


def oauth_app(crm: str) -> bool:
    """Reapit and Alto authenticate with NurtureHub's own app credentials (a token request)."""
    return "client_id" in REGISTRY[crm].model_fields


# --- every CRM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("crm", CRMS)
def test_auth_step_gets_a_token_or_checks_the_key_with_one_cheap_request(
    crm: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    with client(crm, sandbox) as c:
        message = c.authenticate()
    log = control.requests(crm)
    assert len(log) == 1 and log[0]["status"] == 200, log
    assert REGISTRY[crm].spec.crm_name in message
    if oauth_app(crm):
        assert log[0]["method"] == "POST" and log[0]["path"].endswith("/token")
        assert "token obtained" in message
    else:
        assert log[0]["method"] == "GET"
        sizes = [v for k, v in log[0]["query"].items() if k in ("pageSize", "page[size]", "limit")]
        assert sizes == ["1"] or log[0]["path"].endswith("/0/1"), log[0]  # agentOS: count in the path
        assert "accepted the credentials" in message


@pytest.mark.parametrize("crm", CRMS)
def test_paging_to_the_end_yields_every_record_once_mapped_as_crm_apis_says(
    crm: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    control.dataset(crm, contacts=CONTACTS, leads=LEADS)
    with client(crm, sandbox, page_size=PAGE) as c:
        c.authenticate()
        people = read_all(c, "contacts")
        applicants = read_all(c, "leads")
    contact_prefixes, lead_prefixes = PREFIXES[crm]

    assert len(people) == len({p.external_id for p in people}) == CONTACTS
    assert len(applicants) == len({a.external_id for a in applicants}) == LEADS
    assert {prefix_of(p.external_id) for p in people} == contact_prefixes
    assert {prefix_of(a.external_id) for a in applicants} == lead_prefixes
    # Several pages per endpoint, and no page asked for beyond the end.
    gets = [q for q in control.requests(crm) if q["method"] == "GET"]
    assert all(q["status"] == 200 for q in gets)
    endpoints = len(c.spec.contacts) + len(c.spec.leads)
    assert len(gets) >= (CONTACTS + LEADS) // PAGE
    assert len(gets) <= (CONTACTS + LEADS) // PAGE + endpoints + 1

    for lead in applicants:
        assert lead.kind in r.LEAD_KINDS
        prefix = prefix_of(lead.external_id)
        if prefix:
            assert lead.kind == PREFIX_KINDS[prefix], lead
    assert len({a.kind for a in applicants}) > 1
    contact_ids = {p.external_id for p in people}
    linked = [a.contact_external_id for a in applicants if a.contact_external_id is not None]
    if crm == "agentos":
        assert not linked  # agentOS gives no link
    else:
        assert linked and set(linked) <= contact_ids

    consents = Counter(p.marketing_consent for p in people)
    assert set(consents) <= set(r.CONSENTS)
    if crm == "agentos":
        assert consents == {"granted": CONTACTS}  # it lists only consenting contacts
    elif crm == "alto":
        assert consents == {"unknown": CONTACTS}  # no consent field in the list
    else:
        assert consents["granted"] and consents["denied"]

    e164 = 0
    for person in people:
        email, phone = PRIMARY[crm](person.raw)
        assert person.email == (email.strip().lower() if email else None), person
        assert person.phone == (r.phone(phone, person.external_id) if phone else None), person
        assert person.email is None or person.email == person.email.lower()
        if person.phone and E164.match(person.phone):
            e164 += 1
        elif person.phone:
            assert person.phone == str(phone).strip()  # did not parse: kept as given
        assert person.source_updated_at is None if crm == "agentos" else person.source_updated_at is not None
    assert e164 >= 0.8 * sum(1 for p in people if p.phone)


@pytest.mark.parametrize("crm", CRMS)
def test_rejected_credentials_say_what_to_do(crm: str, sandbox: SandboxServer, control: SandboxControl) -> None:
    cls = REGISTRY[crm]
    if oauth_app(crm):
        bad = resource(crm, sandbox, client_secret="wrong").client(*connection_values(crm, sandbox))
    else:
        key = cls.credential_sets[0][0]
        bad = client(crm, sandbox, credentials={key: "wrong"})
    with bad, pytest.raises(CrmError) as caught:
        bad.authenticate()
    error = caught.value
    name = cls.spec.crm_name
    assert error.kind is ErrorKind.AUTH
    assert name in error.message and "reconnect" in error.message.lower(), error.message
    assert [q["status"] for q in control.requests(crm)] == [401]  # never retried


def test_alto_401_and_403_each_say_what_to_do(sandbox: SandboxServer, control: SandboxControl) -> None:
    """401 is the token: one fresh token, then the app credentials are rejected. 403 is the AgencyRef."""
    control.fault("alto", "unauthorized", stream="contacts", times=-1)
    with client("alto", sandbox) as c, pytest.raises(CrmError) as token:
        c.authenticate()
        read_all(c, "contacts")
    assert [q["path"] for q in control.requests("alto")] == ["/token", "/contacts/all", "/token", "/contacts/all"]

    control.reset()
    with client("alto", sandbox, settings={"agency_ref": "not-this-agency"}) as c, pytest.raises(CrmError) as agency:
        c.authenticate()
        read_all(c, "contacts")
    assert [q["status"] for q in control.requests("alto")] == [200, 403]

    assert token.value.kind is agency.value.kind is ErrorKind.AUTH
    assert token.value.message != agency.value.message
    assert "Alto" in token.value.message and "reconnect" in token.value.message
    assert "AgencyRef" in agency.value.message and "AgencyRef" not in token.value.message


@pytest.mark.parametrize("crm", CRMS)
def test_a_page_that_repeats_one_already_read_stops_the_stream(
    crm: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    """A repeated next link, cursor, or (Loop, agentOS) the same page under a new number or offset."""
    control.fault(crm, "repeat_next", stream="contacts")
    with client(crm, sandbox, page_size=PAGE) as c, pytest.raises(CrmError) as caught:
        read_all(c, "contacts")
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert "repeats a page already read" in caught.value.message
    assert len(control.requests(crm)) <= 3


@pytest.mark.parametrize("crm", CRMS)
def test_a_refused_request_names_the_crm_the_endpoint_and_its_words_and_is_not_retried(
    crm: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    """Each sandbox refuses a page size over its cap with a 400 (Reapit: 422) in that CRM's own error body."""
    with client(crm, sandbox, page_size=5000) as c, pytest.raises(CrmError) as caught:
        read_all(c, "contacts")
    message = caught.value.message
    assert caught.value.kind is ErrorKind.UPSTREAM
    assert REGISTRY[crm].spec.crm_name in message and "must be between" in message
    assert re.search(r"HTTP 4(00|22)", message), message
    assert "Traceback" not in message and "{" not in message
    assert [q["status"] for q in control.requests(crm) if q["method"] == "GET"] in ([400], [422])


@pytest.mark.parametrize(
    "body",
    [
        {"errors": [{"code": "ServerError", "message": "Alto is having a moment"}]},
        {"type": "about:blank", "title": "Server Error", "status": 500, "detail": "Alto is having a moment"},
    ],
    ids=["errors", "problem-details"],
)
def test_alto_error_words_come_from_either_error_body(body: dict[str, Any]) -> None:
    def alto(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        return httpx.Response(500, json=body)

    res = REGISTRY["alto"](base_url="http://alto.test", client_id="i", client_secret="s", **FAST)
    res._transport = httpx.MockTransport(alto)
    with res.client({"agency_ref": "a"}, {}) as c, pytest.raises(CrmError) as caught:
        read_all(c, "contacts")
    assert "Alto answered /contacts/all with HTTP 500 (Alto is having a moment)" in caught.value.message


@pytest.mark.parametrize("retry_after,wait", [(None, 60.0), ("7", 7.0)])
def test_agentos_waits_60_s_after_a_429_without_retry_after(
    retry_after: str | None, wait: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With production tuning: a bare 429 waits agentOS's 60 s; a Retry-After is honoured."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    answers = iter(
        [
            httpx.Response(
                429, json={"Message": "slow down"}, headers=dict([("Retry-After", retry_after)] if retry_after else [])
            )
        ]
    )

    def agentos(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json={"Count": 1, "Data": [{"OID": "x"}]})

    res = REGISTRY["agentos"](base_url="http://agentos.test")
    res._transport = httpx.MockTransport(agentos)
    with res.client({"short_name": "s"}, {"api_key": "k"}) as c:
        assert [p.external_id for p in read_all(c, "contacts")] == ["landlord:x", "tenant:x"]
    assert slept == [wait]


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


# --- the sync engine over a real app database ----------------------------------------------------


def integration(db_url: str, crm: str, sandbox: SandboxServer) -> accounts.Integration:
    settings, credentials = connection_values(crm, sandbox)
    with db.engine(db_url).begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], crm, crm, settings, credentials)
        found = accounts.get_integration(conn, integration_id)
    assert found is not None
    return found


def sync(db_url: str, found: accounts.Integration, c: CrmClient, *, full: bool) -> dict[str, StepResult]:
    session = SyncSession(db.engine(db_url), found, c, run_id=None, trigger="manual", full=full)
    steps = [session.auth_refresh(), session.import_stream("contacts"), session.import_stream("leads")]
    steps.append(session.finish(steps))
    return {s.event_type: s for s in steps}


def count(db_url: str, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with db.engine(db_url).connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_agentos_reads_everything_and_writes_only_what_changed(
    db_url: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    control.dataset("agentos", contacts=CONTACTS, leads=LEADS)
    found = integration(db_url, "agentos", sandbox)
    with client("agentos", sandbox, page_size=PAGE) as c:
        first = sync(db_url, found, c, full=False)
        assert first["contact_import"].affected == CONTACTS and first["lead_update"].affected == LEADS

        second = sync(db_url, found, c, full=False)  # nothing changed at agentOS
        assert second["contact_import"].affected == second["lead_update"].affected == 0
        assert second["contact_import"].read == CONTACTS and second["lead_update"].read == LEADS
        assert second["sync_finished"].outcome == "success"

        touched = control.touch("agentos", contacts=3, leads=2)  # new ETags
        gone = control.delete("agentos", contacts=2)  # withdrawn consent: no longer listed
        third = sync(db_url, found, c, full=False)
    changed = set(touched["contacts"]) - set(gone["contacts"])  # a touched record may be deleted too
    assert third["contact_import"].affected == len(changed) + 2 and third["lead_update"].affected == 2
    assert count(db_url, contacts, integration_id=found.id) == CONTACTS
    assert count(db_url, contacts, integration_id=found.id, deleted=True) == 2
    with db.engine(db_url).connect() as conn:
        deleted = set(conn.execute(select(contacts.c.external_id).where(contacts.c.deleted.is_(True))).scalars())
        cursors = conn.execute(select(func.count()).select_from(sync_cursors)).scalar_one()
    assert deleted == set(gone["contacts"])
    assert cursors == 0  # no timestamps, so no cursor: every sync reads everything


def test_agentos_sync_larger_than_one_rate_window_draws_no_429(
    db_url: str, sandbox: SandboxServer, control: SandboxControl
) -> None:
    """The published 50/min, scaled down on both sides to 10 per 2 s; the sync needs ~3 windows."""
    control.dataset("agentos", contacts=60, leads=40)
    control.rate_limit("agentos", 10, per_seconds=2.0)
    found = integration(db_url, "agentos", sandbox)
    started = time.monotonic()
    with client("agentos", sandbox, page_size=4, rate_limit_requests=10, rate_limit_per_seconds=2.0) as c:
        steps = sync(db_url, found, c, full=True)
    elapsed = time.monotonic() - started
    log = control.requests("agentos")
    assert steps["sync_finished"].outcome == "success", steps["sync_finished"].message
    assert steps["contact_import"].affected == 60 and steps["lead_update"].affected == 40
    assert len(log) == 1 + 2 * 8 + 2 * 5 >= 25  # the key check, then 30+30 contacts and 20+20 leads by 4
    assert [q["status"] for q in log] == [200] * len(log)  # not one 429 (nor a 403 block)
    assert elapsed >= 2 * 2.0  # the limiter, not luck, kept it inside the window


def test_agentos_stops_on_a_403_after_repeated_429s_and_says_so(
    sandbox: SandboxServer, control: SandboxControl
) -> None:
    """agentOS blocks a key after repeated 429s: the client stops at the 403 rather than hammer it."""
    control.rate_limit("agentos", 1, per_seconds=60.0)
    with client("agentos", sandbox, max_attempts=10, rate_limit_requests=1000, rate_limit_per_seconds=1.0) as c:
        c.authenticate()  # takes the only request of the window
        with pytest.raises(CrmError) as caught:
            read_all(c, "contacts")
    statuses = [q["status"] for q in control.requests("agentos")]
    assert statuses == [200, 429, 429, 429, 403]  # and nothing after the 403
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_at is not None
    assert "agentOS" in caught.value.message and "next attempt at" in caught.value.message
    assert "hammer" in caught.value.message


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
