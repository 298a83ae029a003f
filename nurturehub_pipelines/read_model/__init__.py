"""The integrations page as data: cards and log events, built from `crm_sync_log`.

Every card field comes from the log alone (rows written outside a run included), plus the integration's
one active sync request for `sync_in_progress`. One job a module:
- `events`: the log event, the log and the error row a Retry points at;
- `refs`: which integrations (never their credentials);
- `kinds`: the newest rows of each kind a card is built from, one index seek each;
- `health`: the badge and staleness; `streaks`: `consecutive_failures`; `activity`: `sync_in_progress`;
- `card`: the card, assembled; `cards`: one card seek by seek, or an organisation's;
- `summary`: an organisation's cards from `crm_sync_summary`, the triggers' summary of the log (0007);
- `next_sync`: the schedule's next tick.
The rules of the log itself (completed, failed, order) live in `store/sync_log`, those of a sync request
in `store/sync_requests`.
"""

from __future__ import annotations

from nurturehub_pipelines.read_model.activity import RUN_ACTIVITY_WINDOW, STEP_EVENTS, run_writing, sync_in_progress
from nurturehub_pipelines.read_model.card import Card
from nurturehub_pipelines.read_model.cards import card, cards
from nurturehub_pipelines.read_model.events import LOG_LIMIT, LogEvent, error_event, iso, log_events
from nurturehub_pipelines.read_model.health import STALE_AFTER
from nurturehub_pipelines.read_model.kinds import RECENT_ERRORS
from nurturehub_pipelines.read_model.next_sync import next_sync_at
from nurturehub_pipelines.read_model.refs import IntegrationRef, integration_ref, integration_refs
from nurturehub_pipelines.store.tables import utcnow  # the benchmarks' clock, as before the split

__all__ = [
    "LOG_LIMIT",
    "RECENT_ERRORS",
    "RUN_ACTIVITY_WINDOW",
    "STALE_AFTER",
    "STEP_EVENTS",
    "Card",
    "IntegrationRef",
    "LogEvent",
    "card",
    "cards",
    "error_event",
    "integration_ref",
    "integration_refs",
    "iso",
    "log_events",
    "next_sync_at",
    "run_writing",
    "sync_in_progress",
    "utcnow",
]
