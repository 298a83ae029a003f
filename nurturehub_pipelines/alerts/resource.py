"""The `alert_delivery` resource: the alert settings as Dagster configures them, for the sensor and the job."""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, EnvVar

from nurturehub_pipelines.settings import (
    ALERT_ENV,
    DEFAULT_ALERT_FROM,
    DEFAULT_BASE_URL,
    DEFAULT_FAILURE_THRESHOLD,
    AlertSettings,
)


class AlertDelivery(ConfigurableResource):
    """Alert links, the SMTP server, the sender and the streak threshold (DESIGN.md's defaults when unset).

    Configured through `EnvVar`s (`alert_delivery_from_env`), so the SMTP URL and its password stay out of
    run config, the Dagster UI and logs: Dagster shows the variable's name, never its value.
    """

    base_url: str = DEFAULT_BASE_URL
    smtp_url: str | None = None
    alert_from: str = DEFAULT_ALERT_FROM
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD

    def alert_settings(self) -> AlertSettings:
        return AlertSettings(self.base_url, self.smtp_url, self.alert_from, self.failure_threshold)


def alert_delivery_from_env() -> AlertDelivery:
    """An `EnvVar` for each alert variable that is set; the defaults for the rest."""
    values: dict[str, Any] = {
        field: EnvVar.int(name) if field == "failure_threshold" else EnvVar(name)
        for field, name in ALERT_ENV.items()
        if os.environ.get(name)
    }
    return AlertDelivery(**values)
