"""Fixtures for the CRM sandbox tests: one real loopback server per session, reset before each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from sandbox_drivers import DRIVERS, Driver

from crm_sandbox import SandboxControl, SandboxServer


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def _control_client(sandbox: SandboxServer) -> Iterator[SandboxControl]:
    with SandboxControl(sandbox.root_url) as ctl:
        yield ctl


@pytest.fixture
def control(_control_client: SandboxControl) -> SandboxControl:
    """The control client, after a reset of every CRM (so each test starts from the defaults)."""
    _control_client.reset()
    return _control_client


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture(params=sorted(DRIVERS))
def driver(
    request: pytest.FixtureRequest, sandbox: SandboxServer, control: SandboxControl, http: httpx.Client
) -> Driver:
    """One test per CRM."""
    return DRIVERS[request.param](sandbox.root_url, http)


@pytest.fixture
def driver_for(sandbox: SandboxServer, control: SandboxControl, http: httpx.Client) -> Callable[[str], Driver]:
    """A driver for a named CRM, for tests about one CRM's specifics."""
    return lambda crm: DRIVERS[crm](sandbox.root_url, http)
