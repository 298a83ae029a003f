"""Fixtures for the CRM client tests: one sandbox over real loopback HTTP per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_sandbox.control import SandboxControl
from crm_sandbox.server import SandboxServer


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def control(sandbox: SandboxServer) -> Iterator[SandboxControl]:
    with SandboxControl(sandbox.root_url) as ctl:
        ctl.reset()
        yield ctl
