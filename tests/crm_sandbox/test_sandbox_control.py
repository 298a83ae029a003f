"""The control API and the server itself: request log, validation, reset, CLI entry point, speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sandbox_drivers import Driver

from crm_sandbox import SANDBOX_CREDENTIALS, SandboxControl, SandboxServer

DriverFor = Callable[[str], Driver]
REPO = Path(__file__).resolve().parents[3]


def test_requests_log_records_calls_but_never_credentials(driver: Driver, control: SandboxControl) -> None:
    driver.get(driver.page_one("leads"))
    driver.get(driver.page_one("contacts"), headers={})
    log = control.requests(driver.crm)
    data_calls = [entry for entry in log if "token" not in entry["path"]]
    assert [entry["status"] for entry in data_calls] == [200, 401]
    first = data_calls[0]
    assert first["method"] == "GET" and first["path"].startswith("/")
    assert first["path"] in driver.page_one("leads")[0]
    assert all(isinstance(value, str) for value in first["query"].values())
    assert first["at"].endswith("Z")
    dumped = json.dumps(log)
    secrets = [
        v for k, v in SANDBOX_CREDENTIALS[driver.crm].items() if k in ("client_secret", "api_token", "api_key", "token")
    ]
    bearer = driver.headers().get("Authorization", "").removeprefix("Bearer ")
    assert not any(secret and secret in dumped for secret in [*secrets, bearer])
    control.clear_requests(driver.crm)
    assert control.requests(driver.crm) == []


def test_control_api_validates_its_input(sandbox: SandboxServer, control: SandboxControl) -> None:
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox") as http:
        assert http.post("/nosuchcrm/faults", json={"kind": "rate_limit"}).status_code == 404
        assert http.post("/reapit/faults", json={"kind": "gremlins"}).status_code == 400
        assert http.post("/reapit/faults", json={"kind": "rate_limit", "stream": "deals"}).status_code == 400
        assert http.post("/reapit/faults", json={"kind": "rate_limit", "times": 0}).status_code == 400
        assert http.post("/reapit/dataset", json={"contacts": -1}).status_code == 400
        assert http.post("/reapit/dataset", content=b"[1]").status_code == 400
        assert http.post("/reapit/token_ttl", json={"seconds": 0}).status_code == 400


def test_reset_restores_every_default(driver: Driver, control: SandboxControl) -> None:
    headers = driver.headers()
    control.dataset(driver.crm, contacts=3, leads=2, malformed_contacts=1, seed=4)
    control.fault(driver.crm, "server_error", times=-1)
    control.rate_limit(driver.crm, 1, per_seconds=60)
    control.reset()
    driver.forget_token()
    assert control.faults(driver.crm) == [] and control.requests(driver.crm) == []
    assert len(driver.read("contacts", size=100)) == 250
    revoked = driver.crm in ("reapit", "alto")  # issued OAuth tokens are revoked; keys stay valid
    assert driver.get(driver.page_one(), headers=headers).status_code == (401 if revoked else 200)


def test_dataset_update_keeps_omitted_values(control: SandboxControl) -> None:
    assert control.dataset("loop", contacts=10) == {
        "contacts": 10,
        "leads": 120,
        "malformed_contacts": 0,
        "malformed_leads": 0,
        "seed": 0,
    }
    assert control.dataset("loop", malformed_leads=2)["contacts"] == 10


def test_serve_forever_prints_the_base_urls_and_serves() -> None:
    code = "from crm_sandbox import serve_forever; serve_forever('127.0.0.1', 0)"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {
            "REAPIT_BASE_URL",
            "REAPIT_TOKEN_URL",
            "ALTO_BASE_URL",
            "STREET_BASE_URL",
            "AGENTOS_BASE_URL",
            "LOOP_BASE_URL",
            "OPENAPI_BASE_URL",
        }
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"{urls['LOOP_BASE_URL']}/contacts", headers={"x-api-key": "sandbox-loop-key"})
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200 and response.json()["totalCount"] == 250
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("crm", ["reapit", "openapi", "street"])
def test_large_datasets_serve_any_page_quickly(driver_for: DriverFor, control: SandboxControl, crm: str) -> None:
    driver = driver_for(crm)
    control.dataset(crm, contacts=100_000, leads=50_000)
    control.rate_limit(crm, None)
    headers = driver.headers()
    request = driver.first(driver.endpoints["contacts"][0][0], None, 100)
    served, started = 0, time.monotonic()
    for _ in range(20):
        body = driver.get(request, headers=headers).json()
        served += len(driver.records(body))
        request = driver.next(request, body)
        assert request is not None
    rate = served / (time.monotonic() - started)
    assert served == 2000 and rate > 2000, f"{rate:.0f} records/s"
    touched = control.touch(crm, contacts=2)["contacts"]
    since = driver.read("contacts", since="2026-03-11T10:40:00Z")  # base slot 100,000 (one past the end)
    assert sorted(eid for eid, _ in since) == sorted(touched)
