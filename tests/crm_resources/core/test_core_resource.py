"""The CRM resource owns its run's client: made once, shared by the run's steps, closed by Dagster's teardown."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from dagster import In, Nothing, job, op
from mock_crm import MOCK, page, read_ids

from crm_resources.core import Connection, CrmClient, CrmResource, HeaderAuth


class MockResource(CrmResource):
    base_url: str = "http://mock.test/api"
    spec = MOCK
    settings_keys = ("office",)
    credential_sets = (("api_key",),)

    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        return self.base_url, HeaderAuth("x-api-key", credentials["api_key"]), {}, {"office": settings["office"]}


SETTINGS, CREDENTIALS = {"office": "north"}, {"api_key": "k"}


def test_the_resource_makes_its_client_once_and_hands_out_the_same_one() -> None:
    resource = MockResource(page_size=1, max_attempts=2)
    resource._transport = httpx.MockTransport(lambda request: page([{"id": request.headers["x-api-key"]}]))
    first = resource.client(SETTINGS, CREDENTIALS)
    assert resource.client(dict(SETTINGS), dict(CREDENTIALS)) is first
    assert read_ids(first) == ["k"]  # the test transport, the credentials and the tuning reach the client
    assert first.requests_made == 1 and first.tuning.max_attempts == 2 and first.spec.paginator.page_size == 1
    assert first.path_vars == {"office": "north"}


def test_one_resource_instance_serves_one_integration() -> None:
    resource = MockResource()
    resource.client(SETTINGS, CREDENTIALS)
    with pytest.raises(ValueError, match="already serves another integration"):
        resource.client(SETTINGS, {"api_key": "another agency's key"})


def test_a_client_closed_by_its_caller_is_replaced_on_the_next_call() -> None:
    resource = MockResource()
    with resource.client(SETTINGS, CREDENTIALS) as first:
        pass
    assert first.closed
    second = resource.client(SETTINGS, CREDENTIALS)
    assert second is not first and not second.closed


def test_a_run_shares_one_client_across_its_steps_and_dagster_closes_it() -> None:
    seen: list[CrmClient] = []

    @op
    def auth_refresh(crm_api: MockResource) -> None:
        client = crm_api.client(SETTINGS, CREDENTIALS)
        client.requests_made += 1  # stands in for the token request
        seen.append(client)

    @op(ins={"after": In(Nothing)})
    def contact_import(crm_api: MockResource) -> None:
        client = crm_api.client(SETTINGS, CREDENTIALS)
        assert client.requests_made == 1  # the count (and the token, the limiter) carried over
        assert not client.closed
        seen.append(client)

    @job
    def sync_mock() -> None:
        contact_import(auth_refresh())

    for _ in range(2):
        result = sync_mock.execute_in_process(resources={"crm_api": MockResource()})
        assert result.success
    first_run, second_run = seen[:2], seen[2:]
    assert first_run[0] is first_run[1] and second_run[0] is second_run[1]
    assert first_run[0] is not second_run[0]  # one client per run
    assert all(client.closed for client in seen)  # teardown_after_execution closed each


def test_teardown_closes_the_client_even_when_a_step_fails() -> None:
    seen: list[CrmClient] = []

    @op
    def failing(crm_api: MockResource) -> None:
        seen.append(crm_api.client(SETTINGS, CREDENTIALS))
        raise RuntimeError("the step failed")

    @job
    def sync_mock() -> None:
        failing()

    result = sync_mock.execute_in_process(resources={"crm_api": MockResource()}, raise_on_error=False)
    assert not result.success and seen and seen[0].closed
