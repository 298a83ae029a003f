"""Writing one batch behind the reader: the database works on batch N while the engine maps batch N+1.

The CRM is already read one page ahead (`crm_resources.core.readahead`); this overlaps the other wait,
the database's, so a sync's time is closer to the larger of the two than to their sum. One batch at a
time, in order, on one connection: nothing about commits or cursors changes (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """`submit` hands a batch to the writer thread after the previous one has committed; a write's
    exception is raised in the caller, at the next `submit` or at `drain`."""

    def __init__(self, write: Callable[[T], int], name: str, *, behind: bool = True) -> None:
        self._write = write
        self._behind = behind
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-behind-{name}")
        self._pending: Future[int] | None = None
        self.written = 0
        self.failed = False  # a write raised: nothing more is written

    def submit(self, batch: T) -> None:
        self.drain()
        if not self._behind:  # written here and now, on the caller's thread
            try:
                self.written += self._write(batch)
            except BaseException:
                self.failed = True
                raise
            return
        self._pending = self._pool.submit(self._write, batch)

    def drain(self) -> int:
        """Wait for the batch in flight; returns the rows written so far."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self.written += pending.result()
            except BaseException:
                self.failed = True
                raise
        return self.written

    def close(self) -> None:
        """Wait for (but do not raise) a batch still in flight, so its commit is never cut short."""
        if self._pending is not None:
            self._pending.exception()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> WriteBehind[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
