"""Fixtures for the core's unit tests: MockCRM clients on a MockTransport, and recorded sleeps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from mock_crm import FAST, MOCK, ClientFactory, Handler

from crm_resources.core import CrmClient, HeaderAuth, Tuning


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """`make_client(handler, auth=..., tuning=..., **spec_changes)`: a MockCRM client on a MockTransport."""
    made: list[CrmClient] = []

    def make(
        handler: Handler, *, auth: httpx.Auth | None = None, tuning: Tuning = FAST, **spec_changes: Any
    ) -> CrmClient:
        spec = replace(MOCK, **spec_changes)
        client = CrmClient(
            spec,
            "http://mock.test/api",
            auth or HeaderAuth("x-api-key", "k"),
            tuning=tuning,
            transport=httpx.MockTransport(handler),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every `time.sleep` (retry waits, the rate limiter) recorded and skipped."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept
