"""Fault injection over real loopback HTTP: every kind, counting (times/after), targeting and order."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from sandbox_drivers import Driver, LoopDetected

from crm_sandbox import SandboxControl

DriverFor = Callable[[str], Driver]
SLEEPS = {"timeout": 0.5, "delay": 0.2}


def _assert_faulty(kind: str, driver: Driver, client: httpx.Client, headers: dict[str, str]) -> None:
    url, params = driver.page_one()
    if kind == "reset":
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(url, params=params, headers=headers)
        return
    if kind == "timeout":
        with pytest.raises(httpx.ReadTimeout):
            client.get(url, params=params, headers=headers, timeout=0.15)
        return
    started = time.monotonic()
    response = client.get(url, params=params, headers=headers)
    if kind == "delay":
        assert response.status_code == 200 and time.monotonic() - started >= SLEEPS["delay"]
    elif kind == "truncated_json":
        assert response.status_code == 200 and "json" in response.headers["content-type"]
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    elif kind == "html":
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert response.text.startswith("<!DOCTYPE html>")
    else:
        status = {"rate_limit": 429, "server_error": 500, "unavailable": 503, "unauthorized": 401, "forbidden": 403}
        assert response.status_code == status[kind]
        assert driver.error_shape_ok(response)
        if kind in ("rate_limit", "unavailable"):
            assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    "kind",
    ["rate_limit", "server_error", "unavailable", "timeout", "delay", "reset", "truncated_json", "html"]
    + ["unauthorized", "forbidden"],
)
def test_each_fault_fires_exactly_times_then_the_api_answers_normally(
    driver: Driver, control: SandboxControl, http: httpx.Client, kind: str
) -> None:
    headers = driver.headers()  # any token request happens before the fault is queued
    control.fault(driver.crm, kind, stream="contacts", times=2, retry_after="3", seconds=SLEEPS.get(kind))
    for _ in range(2):
        _assert_faulty(kind, driver, http, headers)
    normal = driver.get(driver.page_one(), headers=headers)
    assert normal.status_code == 200 and driver.records(normal.json())
    assert control.faults(driver.crm) == []
    statuses = [entry["status"] for entry in control.requests(driver.crm) if entry["path"] != "/token"]
    assert len(statuses) == 3 and statuses[-1] == 200


def test_after_lets_the_first_requests_through(driver: Driver, control: SandboxControl) -> None:
    control.fault(driver.crm, "server_error", stream="contacts", after=2)
    statuses = [driver.get(driver.page_one()).status_code for _ in range(4)]
    assert statuses == [200, 200, 500, 200]


def test_faults_target_their_stream_and_apply_in_queue_order(driver: Driver, control: SandboxControl) -> None:
    driver.headers()  # 'any' also matches token requests: fetch the token first
    control.fault(driver.crm, "rate_limit", stream="leads")
    control.fault(driver.crm, "server_error", stream="leads")
    control.fault(driver.crm, "unavailable", stream="any", times=-1)
    assert driver.get(driver.page_one("contacts")).status_code == 503  # only the 'any' fault matches
    assert [driver.get(driver.page_one("leads")).status_code for _ in range(3)] == [429, 500, 503]
    assert [f["kind"] for f in control.faults(driver.crm)] == ["unavailable"]
    control.clear_faults(driver.crm)
    assert driver.get(driver.page_one("leads")).status_code == 200


@pytest.mark.parametrize("crm", ["reapit", "alto", "openapi"])
def test_token_stream_faults_hit_the_token_endpoint_only(
    driver_for: DriverFor, control: SandboxControl, crm: str
) -> None:
    driver = driver_for(crm)
    control.fault(crm, "server_error", stream="token")
    path = "/oauth/token" if crm == "openapi" else "/token"
    assert driver.oauth(path, form_client_id=crm == "reapit").status_code == 500
    assert driver.oauth(path, form_client_id=crm == "reapit").status_code == 200


def test_status_override_and_http_date_retry_after(driver: Driver, control: SandboxControl) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    headers = driver.headers()
    control.fault(driver.crm, "server_error", status=502)
    control.fault(driver.crm, "html", status=503, retry_after=date)
    assert driver.get(driver.page_one(), headers=headers).status_code == 502
    html = driver.get(driver.page_one(), headers=headers)
    assert html.status_code == 503 and html.headers["retry-after"] == date and "<html>" in html.text


def test_rate_limit_fault_retry_after_only_if_given_except_openapi(driver: Driver, control: SandboxControl) -> None:
    driver.headers()
    control.fault(driver.crm, "rate_limit")
    response = driver.get(driver.page_one())
    assert response.status_code == 429
    assert ("retry-after" in response.headers) == (driver.crm == "openapi")


def test_repeat_next_sends_the_reader_round_in_a_loop_until_cleared(driver: Driver, control: SandboxControl) -> None:
    control.fault(driver.crm, "repeat_next", stream="contacts")
    with pytest.raises(LoopDetected):
        driver.read("contacts", size=100)
    assert [f["times"] for f in control.faults(driver.crm)] == [-1]  # forever by default
    assert len(driver.read("leads", size=100)) == 120  # other streams are untouched
    control.clear_faults(driver.crm)
    assert len(driver.read("contacts", size=100)) == 250


@pytest.mark.parametrize(("crm", "params"), [("reapit", {"pageNumber": 3}), ("street", {"page[number]": 3})])
def test_repeat_next_on_the_last_page_claims_more_pages(
    driver_for: DriverFor, control: SandboxControl, crm: str, params: dict[str, int]
) -> None:
    driver = driver_for(crm)
    url, first = driver.first(driver.endpoints["contacts"][0][0], None, 100)
    control.fault(crm, "repeat_next", times=1)
    body = driver.get((url, {**first, **params})).json()
    if crm == "reapit":
        assert body["totalPageCount"] > 3 and "pageNumber=3" in body["_links"]["next"]["href"]
    else:
        assert body["meta"]["pagination"]["total_pages"] > 3 and "5D=3" in body["links"]["next"]


def test_reset_breaks_the_body_mid_read(driver_for: DriverFor, control: SandboxControl, http: httpx.Client) -> None:
    driver = driver_for("loop")
    url, params = driver.first("/contacts", None, 100)
    control.fault("loop", "reset")
    received = bytearray()
    with http.stream("GET", url, params=params, headers=driver.headers()) as response:
        assert response.status_code == 200
        announced = int(response.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_bytes():
                received += chunk
    assert 0 < len(received) < announced
    assert driver.get((url, params)).status_code == 200  # the server itself is fine
