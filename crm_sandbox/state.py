"""Mutable state of one CRM simulator: dataset, faults, rate limiter, tokens and request log."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from .datasets import StreamData
from .faults import FaultQueue
from .ratelimit import SlidingWindowLimiter
from .tokens import DEFAULT_TTL, TokenIssuer

DEFAULT_CONTACTS = 250
DEFAULT_LEADS = 120
REQUEST_LOG_SIZE = 20_000
StreamName = Literal["contacts", "leads"]
STREAM_NAMES: tuple[StreamName, ...] = ("contacts", "leads")


class CrmState:
    """Everything the control API can change for one CRM; ``reset`` restores the defaults."""

    def __init__(
        self,
        crm: str,
        *,
        rate_limit: tuple[int, float] | None,
        block_after: int | None = None,
        token_factory: Callable[[], str] | None = None,
    ) -> None:
        self.crm = crm
        self._default_rate, self._block_after = rate_limit, block_after
        self.tokens = TokenIssuer(token_factory) if token_factory else TokenIssuer()
        self.faults = FaultQueue()
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Default dataset, no faults, empty log, published rate limit, no valid tokens."""
        self.configure(DEFAULT_CONTACTS, DEFAULT_LEADS, 0, 0, 0)
        self.faults.clear()
        self.requests.clear()
        self.tokens.expire_all()
        self.tokens.ttl = DEFAULT_TTL
        requests, per_seconds = self._default_rate or (None, 1.0)
        self.set_rate_limit(requests, per_seconds)

    def configure(self, contacts: int, leads: int, malformed_contacts: int, malformed_leads: int, seed: int) -> None:
        """A fresh dataset; mutations are forgotten and cursors of the old one become invalid."""
        self.contacts = StreamData(contacts, malformed_contacts)
        self.leads = StreamData(leads, malformed_leads)
        self.seed = seed
        self.data_seed = f"{self.crm}-{seed}"
        self.generation += 1
        self._mutations = 0

    def dataset_json(self) -> dict[str, int]:
        """The dataset settings, as the control API takes them."""
        return {
            "contacts": self.contacts.size,
            "leads": self.leads.size,
            "malformed_contacts": self.contacts.malformed,
            "malformed_leads": self.leads.malformed,
            "seed": self.seed,
        }

    def set_rate_limit(self, requests: int | None, per_seconds: float) -> None:
        """Replace the limiter (its window starts empty)."""
        self.limiter = SlidingWindowLimiter(requests, per_seconds, self._block_after)

    def stream(self, name: StreamName) -> StreamData:
        """The contacts or leads stream."""
        return self.contacts if name == "contacts" else self.leads

    def mutate(self, counts: dict[StreamName, int], *, delete: bool) -> dict[StreamName, list[int]]:
        """Touch or delete records in each stream (deterministic choice); returns the slots per stream."""
        self._mutations += 1
        rng = random.Random(f"{self.data_seed}:{self.generation}:{self._mutations}")
        now = datetime.now(UTC)
        return {
            name: self.stream(name).mutate(counts.get(name, 0), delete=delete, rng=rng, now=now)
            for name in STREAM_NAMES
        }

    def log(self, method: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        """Record an API request on arrival (never its headers, so never a credential); the caller fills
        in ``status`` when the answer is ready, so a request still sleeping in a fault shows None."""
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entry: dict[str, Any] = {"method": method, "path": path, "query": query, "status": None, "at": at}
        self.requests.append(entry)
        return entry
