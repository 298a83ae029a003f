"""A CRM's declaration: everything that differs between CRMs, as data the engine reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from crm_resources.core.paging import Paginator
from crm_resources.core.ratelimit import Rate
from crm_resources.records import Contact, Lead


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint of a stream. `prefix` keeps ids of a stream's two endpoints apart."""

    path: str
    prefix: str = ""
    label: str = ""


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_auth_message(crm_name: str, status: int) -> str:
    return f"{crm_name} rejected the credentials — reconnect {crm_name} in your CRM settings"


@dataclass(frozen=True)
class CrmSpec:
    """Everything that differs between CRMs, as data. The engine below does the rest."""

    crm: str
    crm_name: str
    contacts: tuple[Endpoint, ...]
    leads: tuple[Endpoint, ...]
    paginator: Paginator
    records: str  # where the envelope keeps the record list
    map_contact: Callable[[Mapping[str, Any], Endpoint], Contact]
    map_lead: Callable[[Mapping[str, Any], Endpoint], Lead]
    rate: Rate | None
    since_param: str | None  # None: no modified-since filter, every sync reads everything
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    auth_message: Callable[[str, int], str] = default_auth_message
    default_retry_after: float | None = None  # when a 429 carries no Retry-After
    blocked_after_rate_limit: bool = False  # agentOS: a 403 after 429s means "stop, don't hammer"
    missing_means_deleted: bool = False  # agentOS: a record gone from a full read may have withdrawn consent
    restart_paging: Callable[[httpx.Response], bool] | None = None  # Open API: expired cursor

    def endpoints(self, stream: str) -> tuple[Endpoint, ...]:
        return self.contacts if stream == "contacts" else self.leads


@dataclass(frozen=True)
class Tuning:
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_wait_seconds: float = 120.0  # a longer Retry-After ends the step with "next attempt at …"
    rate: Rate | None = None
    default_retry_after: float | None = None


@dataclass
class Page:
    endpoint: Endpoint
    records: list[Any]
