"""Reading one page ahead on a thread, so the CRM's latency and the database's overlap instead of adding up."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


def read_ahead(pages: Iterator[T], name: str) -> Iterator[T]:
    """Run `pages` one item ahead on a thread; its exceptions surface here, in order, where the caller reads.

    Only reads run ahead: the caller still commits each page before it moves any cursor.
    """
    ahead: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        ahead.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed over to the reader, raised there
            ahead.put(exc)

    worker = threading.Thread(target=produce, name=f"read-ahead-{name}", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)
