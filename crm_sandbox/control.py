"""A typed client for the sandbox control API, for tests, the demo and benchmarks."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx


class SandboxControl:
    """Calls ``{root_url}/_sandbox/...``; every method raises ``httpx.HTTPStatusError`` on refusal."""

    def __init__(self, root_url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=f"{root_url.rstrip('/')}/_sandbox", timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Every CRM back to defaults: dataset, faults, log, rate limit, tokens."""
        self._call("POST", "/reset")

    def dataset(
        self,
        crm: str,
        contacts: int | None = None,
        leads: int | None = None,
        malformed_contacts: int | None = None,
        malformed_leads: int | None = None,
        seed: int | None = None,
    ) -> dict[str, int]:
        """Resize/reseed a CRM's dataset (omitted values are kept); returns the settings now in force."""
        values = {
            "contacts": contacts,
            "leads": leads,
            "malformed_contacts": malformed_contacts,
            "malformed_leads": malformed_leads,
            "seed": seed,
        }
        return self._call("POST", f"/{crm}/dataset", {k: v for k, v in values.items() if v is not None})

    def touch(self, crm: str, contacts: int = 0, leads: int = 0) -> dict[str, list[str]]:
        """Change that many records; returns their external ids (endpoint-prefixed where crm-apis.md says)."""
        return self._call("POST", f"/{crm}/touch", {"contacts": contacts, "leads": leads})

    def delete(self, crm: str, contacts: int = 0, leads: int = 0) -> dict[str, list[str]]:
        """Delete that many records (tombstone, inactive or gone, per CRM); returns their external ids."""
        return self._call("POST", f"/{crm}/delete", {"contacts": contacts, "leads": leads})

    def fault(
        self,
        crm: str,
        kind: str,
        *,
        stream: str = "any",
        times: int | None = None,
        after: int = 0,
        retry_after: str | None = None,
        status: int | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """Queue a fault; ``times`` defaults to 1 (forever for ``repeat_next``), -1 means forever."""
        body: dict[str, Any] = {"kind": kind, "stream": stream, "after": after, "retry_after": retry_after}
        optional = {"times": times, "status": status, "seconds": seconds}
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._call("POST", f"/{crm}/faults", body)

    def faults(self, crm: str) -> list[dict[str, Any]]:
        """Faults still queued (``times`` is what is left, ``fired`` how often it applied)."""
        return self._call("GET", f"/{crm}/faults")["faults"]

    def clear_faults(self, crm: str) -> None:
        """Drop every queued fault of a CRM."""
        self._call("DELETE", f"/{crm}/faults")

    def requests(self, crm: str) -> list[dict[str, Any]]:
        """The CRM's request log: ``method``, ``path`` (below the CRM's base), ``query``, ``status``, ``at``."""
        return self._call("GET", f"/{crm}/requests")["requests"]

    def clear_requests(self, crm: str) -> None:
        """Empty the CRM's request log."""
        self._call("DELETE", f"/{crm}/requests")

    def rate_limit(self, crm: str, requests: int | None, per_seconds: float = 1.0) -> None:
        """At most ``requests`` per sliding ``per_seconds`` window; None turns limiting off."""
        self._call("POST", f"/{crm}/rate_limit", {"requests": requests, "per_seconds": per_seconds})

    def expire_tokens(self, crm: str) -> None:
        """Invalidate every OAuth token the CRM issued."""
        self._call("POST", f"/{crm}/expire_tokens")

    def token_ttl(self, crm: str, seconds: int) -> None:
        """``expires_in`` (and real lifetime) of tokens issued from now on."""
        self._call("POST", f"/{crm}/token_ttl", {"seconds": seconds})

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
