"""Rate limiting over real loopback HTTP: published defaults, scaled-down limits, agentOS's rolling
window and its block after repeated 429s."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sandbox_drivers import Driver

from crm_sandbox import SandboxControl

DriverFor = Callable[[str], Driver]


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_scaled_down_limit_answers_429_in_the_crm_shape(driver: Driver, control: SandboxControl) -> None:
    headers = driver.headers()
    control.rate_limit(driver.crm, 3, per_seconds=1.0)
    started = time.monotonic()
    responses = [driver.get(driver.page_one(), headers=headers) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert driver.error_shape_ok(responses[-1])
    assert ("retry-after" in responses[-1].headers) == (driver.crm != "agentos")
    _sleep_until(started + 1.05)
    assert driver.get(driver.page_one(), headers=headers).status_code == 200
    control.rate_limit(driver.crm, None)
    assert {driver.get(driver.page_one(), headers=headers).status_code for _ in range(10)} == {200}


@pytest.mark.parametrize(("crm", "limit"), [("reapit", 20), ("agentos", 50), ("street", 600)])
def test_published_rate_limits_are_the_defaults(driver_for: DriverFor, crm: str, limit: int) -> None:
    driver = driver_for(crm)
    headers = driver.headers()
    statuses = [driver.get(driver.page_one(size=1), headers=headers).status_code for _ in range(limit + 1)]
    assert statuses == [200] * limit + [429]


@pytest.mark.parametrize("crm", ["alto", "loop", "openapi"])
def test_crms_without_a_published_limit_do_not_throttle(driver_for: DriverFor, crm: str) -> None:
    driver = driver_for(crm)
    headers = driver.headers()
    assert {driver.get(driver.page_one(size=1), headers=headers).status_code for _ in range(60)} == {200}


def test_agentos_window_is_rolling_and_repeated_429s_block_until_it_clears(
    driver_for: DriverFor, control: SandboxControl
) -> None:
    driver = driver_for("agentos")

    def status() -> int:
        return driver.get(driver.page_one(size=1)).status_code

    control.rate_limit("agentos", 3, per_seconds=1.0)
    t0 = time.monotonic()
    assert status() == 200
    _sleep_until(t0 + 0.5)
    assert [status(), status(), status()] == [200, 200, 429]
    _sleep_until(t0 + 1.05)
    assert status() == 200  # the request at t0 has left the window
    _sleep_until(t0 + 1.15)
    # a fixed window starting at t0 + 1 would admit this; a rolling one still holds 3 requests
    assert [status(), status(), status()] == [429, 429, 429]
    blocked = driver.get(driver.page_one(size=1))
    assert blocked.status_code == 403 and "blocked" in blocked.json()["Message"]
    _sleep_until(t0 + 1.9)
    assert status() == 403  # still blocked: the window holds a request from t0 + 1.05
    _sleep_until(t0 + 2.15)
    assert status() == 200
