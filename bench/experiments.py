"""Candidate engine changes, applied to one bench process only, to measure a fix before anyone makes it.

Each is the smallest monkeypatch that behaves like the proposed edit (bench/README.md says which file and
function). Nothing here is imported by the application; only `bench.sync_child --experiment NAME` uses it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime
from typing import Any


def shallow_rows() -> None:
    """sync/upsert.py, upsert_records: build each row with a shallow dict, not `dataclasses.asdict`.

    `asdict` deep-copies every nested value, so each record's whole `raw` JSON tree is copied once per
    write for nothing: the row is serialised and dropped right after.
    """
    from crm_resources.records import Contact, Lead
    from nurturehub_pipelines.sync import upsert

    names = {cls: tuple(f.name for f in fields(cls)) for cls in (Contact, Lead)}

    def shallow(record: Any) -> dict[str, Any]:
        return {name: getattr(record, name) for name in names[type(record)]}

    upsert.asdict = shallow  # type: ignore[attr-defined]


def prefetch() -> None:
    """crm_resources/core.py, CrmClient.pages: fetch page N+1 on a thread while page N is mapped and upserted.

    The stream stays ordered and at most one page ahead (memory stays flat); the cursor still moves only
    after the rows are committed, since only reads run ahead. The CRM's wait and the database's overlap.
    """
    from crm_resources import core

    original: Callable[..., Iterator[Any]] = core.CrmClient.pages
    done = object()

    def pages(self: core.CrmClient, stream: str, since: datetime | None) -> Iterator[Any]:
        ahead: queue.Queue[Any] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            try:
                for page in original(self, stream, since):
                    while not stop.is_set():
                        try:
                            ahead.put(page, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ahead.put(done)
            except BaseException as exc:  # handed to the consumer, raised where the step expects it
                ahead.put(exc)

        worker = threading.Thread(target=produce, name=f"prefetch-{stream}", daemon=True)
        worker.start()
        try:
            while (item := ahead.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)

    core.CrmClient.pages = pages  # type: ignore[method-assign]


EXPERIMENTS: dict[str, Callable[[], None]] = {"shallow_rows": shallow_rows, "prefetch": prefetch}


def apply(name: str) -> None:
    EXPERIMENTS[name]()
