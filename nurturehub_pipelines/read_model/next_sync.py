"""`next_sync_at`: the schedule's next tick, as Dagster will run it (cron in Europe/London).

The cron is read on London's wall clock, so its ticks keep their local hour across a DST change and their
UTC gap changes (`0 */4 * * *`: 3 h across the spring change, 5 h across the autumn one). A wall time that
does not exist or happens twice is resolved as Dagster's schedules resolve it:
- skipped (spring): a schedule repeating every hour drops the tick; any other runs at the end of the gap;
- repeated (autumn): a schedule repeating every hour runs at both; any other once, at the later one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from nurturehub_pipelines import settings

# A DST change moves the wall clock by at most this much (an hour in London).
_MAX_SHIFT = timedelta(hours=2)


# (zone, cron) -> (since, tick): `tick` is the first tick after `since`, so also after any moment in between.
_LAST_ANSWER: dict[tuple[str, str], tuple[datetime, datetime]] = {}


def next_sync_at(now: datetime) -> datetime:
    """The schedule's next tick after `now`, in `now`'s time zone (the last answer reused while it stands:
    every card of every page asks, and walking the cron costs more than the rest of a card)."""
    key = (settings.SCHEDULE_TIMEZONE, settings.schedule_cron())
    last = _LAST_ANSWER.get(key)
    if last is not None and last[0] <= now < last[1]:
        return last[1].astimezone(now.tzinfo)
    tick = _next_tick(now, ZoneInfo(key[0]), key[1])
    _LAST_ANSWER[key] = (now, tick)
    return tick


def _next_tick(now: datetime, zone: ZoneInfo, cron: str) -> datetime:
    wall_now = now.astimezone(zone).replace(tzinfo=None)
    ticks = croniter(cron, wall_now - _MAX_SHIFT)
    best: datetime | None = None
    while True:
        wall = ticks.get_next(datetime)
        if best is not None and wall > best.astimezone(zone).replace(tzinfo=None) + _MAX_SHIFT:
            return best.astimezone(now.tzinfo)  # no later wall tick can be an earlier moment
        for moment in _moments(wall, zone, _repeats_every_hour(cron)):
            if moment > now and (best is None or moment < best):
                best = moment


def _moments(wall: datetime, zone: ZoneInfo, hourly: bool) -> Iterator[datetime]:
    """The moments (UTC) at which a tick of the wall clock runs: none, one or two."""
    early, late = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    exists = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
    if not exists:  # in the spring gap: the gap ends at its hour, on the clock before the change
        if not hourly:
            yield wall.replace(minute=0, second=0, microsecond=0, tzinfo=zone, fold=0).astimezone(UTC)
    elif early.utcoffset() != late.utcoffset():  # in the repeated autumn hour
        if hourly:
            yield early.astimezone(UTC)
        yield late.astimezone(UTC)
    else:
        yield early.astimezone(UTC)


def _repeats_every_hour(cron: str) -> bool:
    """A cron whose hour field is every hour (Dagster treats those ticks as a clock, not a time of day)."""
    fields, *_ = croniter.expand(cron)
    return fields[1] == ["*"]
