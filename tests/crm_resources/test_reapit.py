"""Reapit against the sandbox over real loopback HTTP: the contract every CRM meets (crm_contract.py)."""

from __future__ import annotations

import pytest
from crm_contract import (  # noqa: F401 - the shared contract, collected here for this CRM
    test_a_page_that_repeats_one_already_read_stops_the_stream,
    test_a_refused_request_names_the_crm_the_endpoint_and_its_words_and_is_not_retried,
    test_auth_step_gets_a_token_or_checks_the_key_with_one_cheap_request,
    test_paging_to_the_end_yields_every_record_once_mapped_as_crm_apis_says,
    test_rejected_credentials_say_what_to_do,
)


@pytest.fixture
def crm() -> str:
    return "reapit"
