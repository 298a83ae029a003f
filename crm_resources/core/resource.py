"""The Dagster resource every CRM resource extends: the engine's tuning, and the run's one client."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

import httpx
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from crm_resources.core.client import CrmClient
from crm_resources.core.paging import with_page_size
from crm_resources.core.ratelimit import Rate
from crm_resources.core.spec import CrmSpec, Tuning

# What a CRM module says about one integration: (base URL, auth, extra headers, path variables).
Connection = tuple[str, httpx.Auth, Mapping[str, str], Mapping[str, str]]


class CrmResource(ConfigurableResource):
    """What every CRM resource shares: tuning of the engine. Subclasses declare the CRM.

    Per-integration settings and credentials come from the app database at run time, so no secret
    ever passes through run config; NurtureHub's own app credentials come from `EnvVar`s.
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_wait_seconds: float = 120.0
    rate_limit_requests: int | None = None  # override the CRM's published rate (tests scale it down)
    rate_limit_per_seconds: float | None = None
    default_retry_after_seconds: float | None = None  # override the CRM's wait for a bare 429

    spec: ClassVar[CrmSpec]
    settings_keys: ClassVar[tuple[str, ...]] = ()
    # Each tuple is one accepted set of credential names (Open API: a token, or an id and secret).
    credential_sets: ClassVar[tuple[tuple[str, ...], ...]] = ((),)

    page_size: int | None = None  # override the CRM's page size for every paginator (tests: many small pages)

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)  # tests: an httpx.MockTransport
    _client: CrmClient | None = PrivateAttr(default=None)
    _client_for: tuple[dict[str, str], dict[str, str]] | None = PrivateAttr(default=None)

    def tuning(self) -> Tuning:
        rate = None
        if self.rate_limit_requests and self.rate_limit_per_seconds:
            rate = Rate(self.rate_limit_requests, self.rate_limit_per_seconds)
        return Tuning(
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            max_wait_seconds=self.max_wait_seconds,
            rate=rate,
            default_retry_after=self.default_retry_after_seconds,
        )

    def client(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> CrmClient:
        """The run's one client, made on the first call: the run's steps share its token, rate limiter and
        request count. Dagster makes one resource instance per run, so one integration per instance."""
        key = (dict(settings), dict(credentials))
        if self._client is not None and not self._client.closed:
            if key != self._client_for:
                raise ValueError(f"this {self.spec.crm_name} resource already serves another integration's run")
            return self._client
        self._client, self._client_for = self._new_client(settings, credentials), key
        return self._client

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Dagster calls this once the run's steps are done, failed or not: the connection closes with the run."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _new_client(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> CrmClient:
        base_url, auth, headers, path_vars = self.connection(settings, credentials)
        spec = self.spec
        if self.page_size:
            spec = replace(spec, paginator=with_page_size(spec.paginator, self.page_size))
        return CrmClient(
            spec,
            base_url,
            auth,
            tuning=self.tuning(),
            headers=headers,
            path_vars=path_vars,
            transport=self._transport,
        )

    @abstractmethod
    def connection(self, settings: Mapping[str, str], credentials: Mapping[str, str]) -> Connection:
        """(base URL, auth, extra headers, path variables) for one integration."""
