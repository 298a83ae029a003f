"""The client-side rate limit: a CRM's published rate, kept on our side so it never has to answer 429."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    requests: int
    per_seconds: float


class RateLimiter:
    """At most `requests` in any rolling `per_seconds`, counted from when each answer arrived.

    Counting from the answer (not the send) keeps us inside a server-side rolling window even when
    network delays bunch our requests up on the server's side.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                while self._times and now - self._times[0] >= self.rate.per_seconds:
                    self._times.popleft()
                if len(self._times) < self.rate.requests:
                    self._times.append(now)
                    return
                time.sleep(self.rate.per_seconds - (now - self._times[0]) + 0.001)

    def answered(self) -> None:
        with self._lock:
            if self._times:
                self._times[-1] = self._clock()
