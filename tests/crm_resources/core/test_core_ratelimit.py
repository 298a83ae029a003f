"""The client-side rate limiter on a fake clock: never more than N in any window, counted from the answers."""

from __future__ import annotations

import time

import httpx
import pytest
from mock_crm import ClientFactory, page, read_ids

from crm_resources.core import Rate, RateLimiter, Tuning


class FakeClock:
    """Time that moves only when someone sleeps (the limiter) or a test says so (a slow answer)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    return fake


def test_never_more_than_n_requests_in_any_rolling_window(clock: FakeClock) -> None:
    limiter = RateLimiter(Rate(3, 10.0), clock=clock)
    sent: list[float] = []
    for _ in range(10):
        limiter.acquire()
        sent.append(clock.now)
        limiter.answered()
    assert sent[:3] == [1000.0] * 3  # a full window's worth goes at once
    for i, moment in enumerate(sent):
        in_window = [t for t in sent[: i + 1] if moment - t < 10.0]
        assert len(in_window) <= 3, (i, sent)
    assert sent[-1] - sent[0] >= 3 * 10.0  # ten requests at three per 10 s need three more windows


def test_the_window_counts_from_when_the_answer_arrived(clock: FakeClock) -> None:
    """A slow answer moves its slot: the next request waits a full window after the answer, not the send."""
    limiter = RateLimiter(Rate(1, 10.0), clock=clock)
    limiter.acquire()
    clock.now += 4.0  # the answer takes 4 s to arrive
    limiter.answered()
    limiter.acquire()
    assert clock.now >= 1000.0 + 4.0 + 10.0


def test_the_client_holds_to_its_crms_rate(make_client: ClientFactory, clock: FakeClock) -> None:
    """Every request goes through the limiter: 6 pages at 2 per second take 2 more seconds than the first 2."""
    seen: list[float] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now)
        number = int(request.url.params["page"])
        return page([{"id": f"{number}a"}, {"id": f"{number}b"}], pages=6)

    client = make_client(crm, rate=Rate(2, 1.0))
    client._limiter._clock = clock  # noqa: SLF001 - the fake clock, so time only moves when the limiter waits
    assert len(read_ids(client)) == 12
    assert client.requests_made == len(seen) == 6
    assert [round(t - seen[0], 3) for t in seen[::2]] == [0.0, 1.001, 2.002]


def test_a_tuning_rate_overrides_the_crms_published_one(make_client: ClientFactory) -> None:
    client = make_client(lambda request: page([]), rate=Rate(50, 60.0), tuning=Tuning(rate=Rate(10, 2.0)))
    assert client._limiter is not None and client._limiter.rate == Rate(10, 2.0)  # noqa: SLF001
    assert make_client(lambda request: page([]), rate=None)._limiter is None  # noqa: SLF001
