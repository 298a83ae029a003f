"""The heartbeat of a sync run executed in its own process (`nurturehub sync`), and when it counts as stopped.

A daemon-launched run has a run worker that Dagster's run monitoring watches; a run executed in process
has none, so a killed `nurturehub sync` would stay STARTED until `max_runtime_seconds` (3 hours). Instead
the process re-tags its run every `NURTUREHUB_HEARTBEAT_SECONDS` (default 30) from a thread, and
`run_outcome_sensor` marks failed a run whose newest beat is older than `MISSED_BEATS` intervals (2 minutes
by default). The interval travels on the run as a tag, so the sensor needs no setting of its own. Only public
Dagster APIs: `DagsterInstance.add_run_tags` here, `report_run_failed` in the sensor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance

log = logging.getLogger(__name__)

TAG_HEARTBEAT = "nurturehub/heartbeat"  # ISO-8601 UTC of the newest beat
TAG_HEARTBEAT_SECONDS = "nurturehub/heartbeat_seconds"  # how often this run beats
HEARTBEAT_SECONDS_ENV = "NURTUREHUB_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 30.0
MISSED_BEATS = 4  # 4 × 30 s = 2 minutes: a slow storage write or a busy host never fails a live run


def interval() -> float:
    """Seconds between beats, from `NURTUREHUB_HEARTBEAT_SECONDS` (tests shorten it)."""
    return float(os.environ.get(HEARTBEAT_SECONDS_ENV) or DEFAULT_HEARTBEAT_SECONDS)


def beat_tags(every: float, now: datetime | None = None) -> dict[str, str]:
    """The tags of one beat: the run starts with them, so even a process killed at once gets found."""
    moment = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return {TAG_HEARTBEAT: moment, TAG_HEARTBEAT_SECONDS: f"{every:g}"}


@contextlib.contextmanager
def beating(instance: DagsterInstance, run_id: str, every: float) -> Iterator[None]:
    """Re-tag the run every `every` seconds on a thread until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                if instance.has_run(run_id):  # not yet created: its starting tags are its first beat
                    instance.add_run_tags(run_id, beat_tags(every))
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next; never kill the sync
                log.warning("could not record the heartbeat of run %s", run_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 10)


def stopped_since(tags: Mapping[str, str], now: datetime) -> datetime | None:
    """The newest beat of a run whose process has stopped beating; None for a live run or one without a
    heartbeat (a daemon-launched run: run monitoring watches its worker)."""
    try:
        last = datetime.fromisoformat(tags[TAG_HEARTBEAT])
        every = float(tags.get(TAG_HEARTBEAT_SECONDS) or DEFAULT_HEARTBEAT_SECONDS)
    except (KeyError, ValueError):
        return None
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last if now - last > timedelta(seconds=MISSED_BEATS * every) else None
