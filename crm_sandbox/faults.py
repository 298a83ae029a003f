"""Queued fault injection: which request gets which fault, independent of any CRM's wire shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STATUS_FAULTS: dict[str, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "html": 200,
}
"""Faults answered without running the endpoint, with their default status."""
SLEEP_FAULTS: dict[str, float] = {"timeout": 10.0, "delay": 2.0}
"""Faults that sleep (default seconds) and then answer normally."""
BODY_FAULTS = frozenset({"reset", "truncated_json"})
"""Faults that break the body of the normal answer."""
KINDS = frozenset({*STATUS_FAULTS, *SLEEP_FAULTS, *BODY_FAULTS, "repeat_next"})
STREAMS = frozenset({"contacts", "leads", "token", "any"})


class FaultError(ValueError):
    """A fault description the control API refuses."""


@dataclass
class Fault:
    """One queued fault; ``times`` counts down (-1 = forever), ``after`` lets matching requests through."""

    kind: str
    stream: str = "any"
    times: int = 1
    after: int = 0
    retry_after: str | None = None
    status: int | None = None
    seconds: float | None = None
    fired: int = 0

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fault:
        """Validate a control-API body. ``repeat_next`` defaults to forever: a loop must not end by itself."""
        kind = body.get("kind")
        if kind not in KINDS:
            raise FaultError(f"kind must be one of {sorted(KINDS)}")
        stream = body.get("stream", "any")
        if stream not in STREAMS or (stream == "token" and kind == "repeat_next"):
            raise FaultError(f"stream must be one of {sorted(STREAMS)} (repeat_next not on token)")
        times = body.get("times", -1 if kind == "repeat_next" else 1)
        after = body.get("after", 0)
        status, seconds, retry_after = body.get("status"), body.get("seconds"), body.get("retry_after")
        if not isinstance(times, int) or times == 0 or times < -1:
            raise FaultError("times must be a positive integer or -1 (forever)")
        if not isinstance(after, int) or after < 0:
            raise FaultError("after must be an integer >= 0")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise FaultError("status must be an HTTP status code")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
            raise FaultError("seconds must be a number >= 0")
        if retry_after is not None and not isinstance(retry_after, str | int):
            raise FaultError("retry_after must be a string (delta-seconds or HTTP-date) or null")
        return cls(
            kind=kind,
            stream=stream,
            times=times,
            after=after,
            retry_after=None if retry_after is None else str(retry_after),
            status=status,
            seconds=None if seconds is None else float(seconds),
        )

    def matches(self, stream: str) -> bool:
        """Token requests only get faults aimed at them or at ``any`` (never a paging fault)."""
        if stream == "token" and self.kind == "repeat_next":
            return False
        return self.stream in ("any", stream)

    @property
    def status_code(self) -> int:
        """The status a status fault answers with."""
        return self.status or STATUS_FAULTS[self.kind]

    @property
    def sleep_seconds(self) -> float:
        """How long a timeout/delay fault waits before answering."""
        return SLEEP_FAULTS[self.kind] if self.seconds is None else self.seconds

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it (``times`` is what is left)."""
        return asdict(self)


class FaultQueue:
    """Faults in the order they were queued; the first one matching a request owns that request."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind the others."""
        self._faults.append(fault)

    def clear(self) -> None:
        """Drop every queued fault."""
        self._faults.clear()

    def pending(self) -> list[Fault]:
        """What is still queued."""
        return list(self._faults)

    def take(self, stream: str) -> Fault | None:
        """The fault to apply to this request, if any; counts ``after`` and ``times`` down."""
        fault = next((f for f in self._faults if f.matches(stream)), None)
        if fault is None:
            return None
        if fault.after:
            fault.after -= 1
            return None
        fault.fired += 1
        if fault.times > 0:
            fault.times -= 1
            if fault.times == 0:
                self._faults.remove(fault)
        return fault
