"""The agencies' own clock: every time a person reads (errors, cards, alerts) is UK time.

One home for it, so an error message, a card and an alert email never disagree about what "14:05" means.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def london_hhmm(moment: datetime) -> str:
    """ "14:05": a moment within the next hours (a rate limit's next attempt)."""
    return moment.astimezone(LONDON).strftime("%H:%M")


def london_time(value: datetime, now: datetime) -> str:
    """ "09:00" today, "09:00 on 3 March" before that, with the year when it is not this one."""
    local, today = value.astimezone(LONDON), now.astimezone(LONDON)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if local.year == today.year:
        return f"{local:%H:%M} on {local.day} {local:%B}"
    return f"{local:%H:%M} on {local.day} {local:%B %Y}"
