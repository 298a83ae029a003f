"""The card (DESIGN.md, "Card fields"), assembled from fetched rows: the one place a card is put together,
whichever path (one integration at a time, or an organisation in one pass) fetched them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nurturehub_pipelines.read_model.events import LogEvent, iso
from nurturehub_pipelines.read_model.health import health
from nurturehub_pipelines.read_model.kinds import Kinds, latest_finished, recent_errors
from nurturehub_pipelines.read_model.refs import IntegrationRef


@dataclass(frozen=True)
class Card:
    id: int
    crm: str
    crm_name: str
    name: str
    enabled: bool
    paused_reason: str | None
    last_synced_at: datetime | None
    health: str
    health_reason: str | None
    consecutive_failures: int
    sync_in_progress: bool
    next_sync_at: datetime | None
    recent_errors: tuple[LogEvent, ...]
    # The event last_synced_at comes from, whose text is written once however many pages show it.
    completed: LogEvent | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "crm": self.crm,
            "crm_name": self.crm_name,
            "name": self.name,
            "enabled": self.enabled,
            "paused_reason": self.paused_reason,
            "last_synced_at": self.completed.occurred_at_iso if self.completed else iso(self.last_synced_at),
            "health": self.health,
            "health_reason": self.health_reason,
            "consecutive_failures": self.consecutive_failures,
            "sync_in_progress": self.sync_in_progress,
            "next_sync_at": iso(self.next_sync_at),
            "recent_errors": [error.to_error_json() for error in self.recent_errors],
        }


def assemble(
    ref: IntegrationRef,
    kinds: Kinds,
    completed: LogEvent | None,
    consecutive_failures: int,
    in_progress: bool,
    now: datetime,
    next_tick: datetime,
) -> Card:
    """A card from the newest rows of each kind (`kinds.KIND_SEEKS`), fetched in any order."""
    return build(
        ref, latest_finished(kinds), completed, recent_errors(kinds), consecutive_failures, in_progress, now, next_tick
    )


def build(
    ref: IntegrationRef,
    latest: LogEvent | None,
    completed: LogEvent | None,
    errors: tuple[LogEvent, ...],
    consecutive_failures: int,
    in_progress: bool,
    now: datetime,
    next_tick: datetime,
) -> Card:
    """A card from the latest finished and completed syncs and the recent errors (newest first), however read."""
    badge, reason = health(latest, completed, now)
    return Card(
        id=ref.id,
        crm=ref.crm,
        crm_name=ref.crm_name,
        name=ref.display_name,
        enabled=ref.enabled,
        paused_reason=ref.paused_reason,
        last_synced_at=completed.occurred_at if completed else None,
        health=badge,
        health_reason=reason,
        consecutive_failures=consecutive_failures,
        sync_in_progress=in_progress,
        next_sync_at=next_tick if ref.scheduled else None,
        recent_errors=errors,
        completed=completed,
    )
