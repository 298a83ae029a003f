"""The badge (DESIGN.md, Health): green, amber, red or pending, and a red card's reason in words."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_resources.core.london import london_time
from nurturehub_pipelines.read_model.events import LogEvent

STALE_AFTER = timedelta(hours=8)  # twice the 4-hour schedule (DESIGN.md, Health)


def health(latest: LogEvent | None, completed: LogEvent | None, now: datetime) -> tuple[str, str | None]:
    """The badge from the latest finished sync and the latest completed one (staleness counts from it)."""
    if latest is None:
        return "pending", "Not synced yet"
    if latest.outcome == "error":
        return "red", latest.message or "The last sync failed"
    assert completed is not None  # the latest finished sync completed
    if now - completed.occurred_at >= STALE_AFTER:
        return "red", f"No sync has completed since {london_time(completed.occurred_at, now)}"
    if latest.outcome == "warning":
        skipped = f"{latest.records_skipped} records skipped" if latest.records_skipped else "warnings"
        return "amber", latest.message or f"The last sync completed with {skipped}"
    return "green", None
