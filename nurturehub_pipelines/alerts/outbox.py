"""Deciding alerts: which streaks call for one, and writing each once to the outbox and in-app.

Each alert is an `alert_outbox` row whose unique `dedupe_key` (`failure:{integration}:{first_log_id}`,
`recovered:{integration}:{first_log_id}`) is inserted with ON CONFLICT DO NOTHING, so re-evaluating,
restarting the daemon or two evaluators at once can never make a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, select

from crm_resources.core.errors import ErrorKind
from nurturehub_pipelines.alerts.messages import Message, Recipient, failure_message, recovery_message
from nurturehub_pipelines.alerts.streaks import streaks
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store.dialect import dialect_insert
from nurturehub_pipelines.store.integration_changes import quarantine
from nurturehub_pipelines.store.tables import alert_outbox, integrations, notifications, users, utcnow

log = logging.getLogger(__name__)

# dedupe key, kind, recipient, words
Alert = tuple[str, str, Recipient, Message]


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation wrote: alerts and recoveries are outbox rows that did not exist before."""

    integrations: int = 0
    alerts: int = 0
    recoveries: int = 0

    def __add__(self, other: Evaluation) -> Evaluation:
        return Evaluation(
            self.integrations + other.integrations, self.alerts + other.alerts, self.recoveries + other.recoveries
        )


def failure_key(integration_id: int, first_log_id: int) -> str:
    return f"failure:{integration_id}:{first_log_id}"


def recovered_key(integration_id: int, first_log_id: int) -> str:
    return f"recovered:{integration_id}:{first_log_id}"


def recipients(conn: Connection, integration_ids: Iterable[int]) -> dict[int, Recipient]:
    """Each integration with its organisation's owner (integrations without one are left out)."""
    rows = conn.execute(
        select(
            integrations.c.id,
            integrations.c.org_id,
            integrations.c.crm,
            integrations.c.name,
            users.c.id.label("user_id"),
            users.c.email,
        )
        .join(users, and_(users.c.org_id == integrations.c.org_id, users.c.role == "owner"))
        .where(integrations.c.id.in_(list(integration_ids)))
    )
    return {row.id: Recipient(*row) for row in rows}


def _add_alerts(conn: Connection, alerts: list[Alert]) -> int:
    """Insert outbox rows that don't exist yet, and an in-app notification for each one that was new."""
    if not alerts:
        return 0
    inserted = conn.execute(
        dialect_insert(conn, alert_outbox)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(alert_outbox.c.dedupe_key),
        [
            {
                "dedupe_key": key,
                "org_id": who.org_id,
                "integration_id": who.integration_id,
                "kind": kind,
                "to_email": who.email,
                "subject": subject,
                "body": body,
                "created_at": utcnow(),
                "attempts": 0,
            }
            for key, kind, who, (subject, body, _) in alerts
        ],
    ).scalars()
    new = set(inserted)
    rows = [
        {
            "org_id": who.org_id,
            "user_id": who.user_id,
            "integration_id": who.integration_id,
            "kind": kind,
            "message": in_app,
            "created_at": utcnow(),
        }
        for key, kind, who, (_, _, in_app) in alerts
        if key in new
    ]
    if rows:
        conn.execute(notifications.insert(), rows)
    return len(new)


def _quarantine_rejected(conn: Connection, alerted: Sequence[int]) -> None:
    """Stop scheduled syncs of alerted integrations whose latest failure was a rejection of the credentials.

    The engine writes the failure's kind before its rows, and clears it (and lifts the quarantine) when a
    sync completes; the rows are locked so that a sync completing meanwhile is seen, not overwritten.
    """
    if not alerted:
        return
    rejected = conn.execute(
        select(integrations.c.id, integrations.c.crm)
        .where(
            integrations.c.id.in_(alerted),
            integrations.c.last_failure_kind == ErrorKind.AUTH.value,
            integrations.c.quarantined_at.is_(None),
        )
        .with_for_update()
    ).all()
    for row in rejected:
        if quarantine(conn, row.id, row.crm, utcnow()):
            log.info("Scheduled syncs of integration %s stop until its credentials change", row.id)


def evaluate(
    conn: Connection, integration_ids: Sequence[int], settings: AlertSettings, fresh_after: int | None = None
) -> Evaluation:
    """Write the alerts these integrations' logs call for and that the outbox doesn't hold yet.

    A streak of `failure_threshold` or more raises one failure alert, and, when its latest failure is a
    rejection of the credentials, quarantines the integration (no scheduled syncs until it is reconnected or
    a sync completes). A failure alert whose streak is no longer the current one (a completed sync came after
    it) gets one recovery.
    """
    found = streaks(conn, integration_ids, fresh_after)
    current = {s.integration_id: s.first_log_id for s in found if not s.ended}
    due = {failure_key(s.integration_id, s.first_log_id): s for s in found if s.count >= settings.failure_threshold}
    _quarantine_rejected(conn, [s.integration_id for s in due.values() if not s.ended])
    keys = set(
        conn.execute(
            select(alert_outbox.c.dedupe_key).where(alert_outbox.c.integration_id.in_(integration_ids))
        ).scalars()
    )
    new_failures = [s for key, s in due.items() if key not in keys]
    alerted = {key for key in keys if key.startswith("failure:")} | due.keys()
    recovered = []
    for key in alerted:
        integration_id, first = (int(part) for part in key.split(":")[1:])
        if current.get(integration_id) != first and recovered_key(integration_id, first) not in keys:
            recovered.append((integration_id, first))
    if not new_failures and not recovered:
        return Evaluation(integrations=len(integration_ids))
    wanted = {s.integration_id for s in new_failures} | {i for i, _ in recovered}
    who = recipients(conn, wanted)
    if missing := wanted - who.keys():
        log.warning("No owner to alert for integrations %s", sorted(missing))
    failures = [
        (
            failure_key(s.integration_id, s.first_log_id),
            "failure",
            who[s.integration_id],
            failure_message(who[s.integration_id], s, settings),
        )
        for s in sorted(new_failures, key=lambda s: s.first_log_id)
        if s.integration_id in who
    ]
    recoveries = [
        (recovered_key(i, first), "recovered", who[i], recovery_message(who[i], settings))
        for i, first in sorted(recovered, key=lambda r: r[1])
        if i in who
    ]
    # Failures first: when a streak ends before it was ever evaluated, its alert is still sent before
    # its recovery (delivery goes by outbox id).
    return Evaluation(
        integrations=len(integration_ids),
        alerts=_add_alerts(conn, failures),
        recoveries=_add_alerts(conn, recoveries),
    )
