"""Read-ahead: the next page is fetched on a thread while the caller writes this one, without changing
what the caller sees (order, errors) and without outliving an early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from crm_resources.core import read_ahead


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"read-ahead-{name}"]


def test_items_arrive_in_order_and_the_thread_ends_with_them() -> None:
    assert list(read_ahead(iter(range(50)), name="order")) == list(range(50))
    assert not _threads("order")


def test_the_next_item_is_produced_while_the_reader_holds_this_one() -> None:
    second_started = threading.Event()
    producer: list[str] = []

    def pages() -> Iterator[int]:
        producer.append(threading.current_thread().name)
        yield 1
        second_started.set()
        yield 2

    reader = read_ahead(pages(), name="ahead")
    assert next(reader) == 1
    # The reader has not asked for item 2, yet it is already being fetched, on the read-ahead thread.
    assert second_started.wait(timeout=5)
    assert producer == ["read-ahead-ahead"]
    assert list(reader) == [2]


def test_a_producer_error_reaches_the_reader_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 failed")

    reader = read_ahead(pages(), name="error")
    assert next(reader) == 1
    assert next(reader) == 2
    with pytest.raises(ValueError, match="page 3 failed"):
        next(reader)
    assert not _threads("error")


def test_an_early_stop_ends_the_thread_and_stops_reading() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            n += 1
            produced.append(n)
            yield n

    reader = read_ahead(endless(), name="early")
    assert [next(reader) for _ in range(3)] == [1, 2, 3]
    assert _threads("early")
    reader.close()  # the caller stops (a failed write, or an error in the step)
    assert not _threads("early")
    count = len(produced)
    assert count <= 3 + 2  # one item in the queue and one in the producer's hand, no more
    time.sleep(0.3)
    assert len(produced) == count  # and nothing is read after the stop
