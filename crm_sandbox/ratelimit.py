"""A true sliding-window rate limiter, with agentOS's block after repeated 429s."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Verdict:
    """A refused request: ``limited`` (429, retry after ``wait`` s) or ``blocked`` (403)."""

    kind: Literal["limited", "blocked"]
    wait: int


class SlidingWindowLimiter:
    """At most ``requests`` accepted requests in any ``per_seconds`` window (requests=None: no limit).

    Only accepted requests occupy the window. With ``block_after`` set, that many 429s in a row block
    every request (403) until the window has emptied, which is agentOS's 'stop, don't hammer'.
    """

    def __init__(self, requests: int | None, per_seconds: float, block_after: int | None = None) -> None:
        self.requests, self.per_seconds, self.block_after = requests, per_seconds, block_after
        self._accepted: deque[float] = deque()
        self._refused_in_a_row = 0
        self._blocked_until = 0.0

    def check(self, now: float | None = None) -> Verdict | None:
        """Admit the request (None) or say how it is refused."""
        if self.requests is None:
            return None
        now = time.monotonic() if now is None else now
        if now < self._blocked_until:
            return Verdict("blocked", math.ceil(self._blocked_until - now))
        window = self._accepted
        while window and window[0] <= now - self.per_seconds:
            window.popleft()
        if len(window) < self.requests:
            window.append(now)
            self._refused_in_a_row = 0
            return None
        self._refused_in_a_row += 1
        if self.block_after is not None and self._refused_in_a_row > self.block_after:
            self._blocked_until = window[-1] + self.per_seconds
            self._refused_in_a_row = 0
            return Verdict("blocked", math.ceil(self._blocked_until - now))
        return Verdict("limited", max(1, math.ceil(window[0] + self.per_seconds - now)))
