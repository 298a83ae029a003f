"""What every CRM client does against the sandbox: auth, paging to the end, mapping, the words of a refusal,
and never looping. Each test_<crm>.py subclasses `CrmContract` for its CRM, so the contract has one home and
every CRM's file runs all of it."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from crm_clients import (
    CONTACTS,
    E164,
    LEADS,
    PAGE,
    PREFIX_KINDS,
    PREFIXES,
    PRIMARY,
    client,
    connection_values,
    oauth_app,
    prefix_of,
    read_all,
    resource,
)

from crm_resources import records as r
from crm_resources.core import CrmError, ErrorKind
from crm_resources.registry import REGISTRY
from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer


class CrmContract:
    """The contract, for the CRM a subclass names: `class TestReapit(CrmContract): CRM = "reapit"`."""

    CRM: str

    @pytest.fixture
    def crm(self) -> str:
        return self.CRM

    def test_auth_step_gets_a_token_or_checks_the_key_with_one_cheap_request(
        self, crm: str, sandbox: SandboxServer, control: SandboxControl
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

    def test_paging_to_the_end_yields_every_record_once_mapped_as_crm_apis_says(
        self, crm: str, sandbox: SandboxServer, control: SandboxControl
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

    def test_rejected_credentials_say_what_to_do(
        self, crm: str, sandbox: SandboxServer, control: SandboxControl
    ) -> None:
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

    def test_a_page_that_repeats_one_already_read_stops_the_stream(
        self, crm: str, sandbox: SandboxServer, control: SandboxControl
    ) -> None:
        """A repeated next link, cursor, or (Loop, agentOS) the same page under a new number or offset."""
        control.fault(crm, "repeat_next", stream="contacts")
        with client(crm, sandbox, page_size=PAGE) as c, pytest.raises(CrmError) as caught:
            read_all(c, "contacts")
        assert caught.value.kind is ErrorKind.BAD_RESPONSE
        assert "repeats a page already read" in caught.value.message
        assert len(control.requests(crm)) <= 3

    def test_a_refused_request_names_the_crm_the_endpoint_and_its_words_and_is_not_retried(
        self, crm: str, sandbox: SandboxServer, control: SandboxControl
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
