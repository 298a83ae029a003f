"""The `alert_delivery` resource and `AlertSettings.from_env` read the same variables with the same defaults."""

from __future__ import annotations

import pytest
from dagster import build_resources

from nurturehub_pipelines.alerts import alert_delivery_from_env
from nurturehub_pipelines.settings import ALERT_ENV, AlertSettings


def resolved() -> AlertSettings:
    with build_resources({"alert_delivery": alert_delivery_from_env()}) as resources:
        return resources.alert_delivery.alert_settings()


def test_unset_variables_give_designs_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALERT_ENV.values():
        monkeypatch.setenv(name, "")  # empty counts as unset
    expected = AlertSettings("http://localhost:8000", None, "alerts@localhost", 3)
    assert resolved() == AlertSettings.from_env() == expected


def test_set_variables_are_read_through_envvar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTUREHUB_BASE_URL", "https://app.example/")
    monkeypatch.setenv("NURTUREHUB_SMTP_URL", "smtp+starttls://u:p@mail.example:587")
    monkeypatch.setenv("NURTUREHUB_ALERT_FROM", "alerts@app.example")
    monkeypatch.setenv("NURTUREHUB_FAILURE_THRESHOLD", "5")
    expected = AlertSettings("https://app.example", "smtp+starttls://u:p@mail.example:587", "alerts@app.example", 5)
    assert resolved() == AlertSettings.from_env() == expected
    assert "u:p@" not in repr(alert_delivery_from_env())
