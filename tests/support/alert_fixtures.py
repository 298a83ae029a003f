"""Fixtures shared by the alert package's and the sensors' tests; each conftest imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.alert_world import BASE_URL, AlertLoop, Org, create_org
from tests.support.smtp_capture import SmtpCapture


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpCapture]:
    """A real SMTP server on loopback, named by NURTUREHUB_SMTP_URL."""
    with SmtpCapture() as server:
        monkeypatch.setenv("NURTUREHUB_SMTP_URL", server.url)
        yield server


@pytest.fixture
def org(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Org:
    """An organisation with an owner, an admin and a member; the alert settings at DESIGN.md's defaults."""
    monkeypatch.setenv("NURTUREHUB_BASE_URL", BASE_URL + "/")
    for default in ("NURTUREHUB_ALERT_FROM", "NURTUREHUB_FAILURE_THRESHOLD"):
        monkeypatch.delenv(default, raising=False)
    return create_org()


@pytest.fixture
def loop() -> AlertLoop:
    return AlertLoop()
