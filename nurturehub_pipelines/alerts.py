"""Owner notifications: failure streaks read from crm_sync_log, a database outbox, SMTP delivery, in-app rows.

Streaks are counted from `crm_sync_log`, not from Dagster's run events, because the log is the one place
every failed sync ends up: runs that failed cleanly (the engine wrote `sync_finished`/`error`), runs that
died (the failure sensor writes the row for them), and rows written outside a run. Run-event sensors also
lose or repeat alerts (a tick sees 5 runs, an exception still moves the cursor, two failures in one tick
both see the same history). Here the evaluation is a pure function of the log: a streak is the
`sync_finished`/`error` rows after the newest `sync_finished` success or warning (ordered by
`(occurred_at, id)`, as the page counts `consecutive_failures`), and it is named by its first row's id.
Each alert is an `alert_outbox` row whose unique `dedupe_key` (`failure:{integration}:{first_log_id}`,
`recovered:{integration}:{first_log_id}`) is inserted with ON CONFLICT DO NOTHING, so re-evaluating,
restarting the daemon or two evaluators at once can never make a second one. Delivery is a separate step
that claims unsent rows, sends them over one SMTP connection and marks each sent, backing off on failure:
an SMTP outage delays an email and never loses one.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    and_,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from crm_resources.core.london import london_time
from crm_resources.registry import crm_name
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store.tables import (
    alert_outbox,
    crm_sync_log,
    integrations,
    notifications,
    sensor_cursors,
    users,
    utcnow,
)

log = logging.getLogger(__name__)

COMPLETED = ("success", "warning")
PAGE_PATH = "/dashboard/settings/integrations"
CURSOR_NAME = "alerts"
# Rows with ids above the watermark are re-read for this long: on PostgreSQL a row can become visible
# after a row with a higher id, so the watermark only passes ids that have been visible for a minute.
WATERMARK_LAG = timedelta(seconds=60)
# On a first evaluation, only streaks that ended within this window still raise their alerts.
FIRST_RUN_WINDOW = timedelta(hours=1)
CHUNK = 500  # integrations per evaluation query
LEASE = timedelta(minutes=2)  # a claimed row is retried after this if its sender died mid-send
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 60  # an outage of hours costs one attempt a minute, and mail leaves soon after it ends


@dataclass(frozen=True)
class Streak:
    """Consecutive failed syncs of one integration; `ended` when a completed sync followed them."""

    integration_id: int
    first_log_id: int
    count: int
    last_message: str
    last_at: datetime
    ended: bool


@dataclass(frozen=True)
class Recipient:
    """An integration and its organisation's owner: the only person who gets alert emails."""

    integration_id: int
    org_id: int
    crm: str
    name: str
    user_id: int
    email: str

    @property
    def label(self) -> str:
        """The CRM's name, with the integration's own name where it differs."""
        product = crm_name(self.crm)
        return product if not self.name or self.name == product else f"{product} ({self.name})"


@dataclass(frozen=True)
class Evaluation:
    integrations: int = 0
    alerts: int = 0
    recoveries: int = 0


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    failed: int = 0


def failure_key(integration_id: int, first_log_id: int) -> str:
    return f"failure:{integration_id}:{first_log_id}"


def recovered_key(integration_id: int, first_log_id: int) -> str:
    return f"recovered:{integration_id}:{first_log_id}"


def page_url(settings: AlertSettings) -> str:
    return settings.base_url + PAGE_PATH


# ---------------------------------------------------------------------------------------------- streaks


def _completed(row: Any) -> Any:
    return and_(row.c.event_type == "sync_finished", row.c.outcome.in_(COMPLETED))


def _after(row: Any, other: Any) -> Any:
    return tuple_(row.c.occurred_at, row.c.id) > tuple_(other.c.occurred_at, other.c.id)


def _newest_finished_outcome(integration_id: Any, before: Any = None) -> Any:
    """The outcome of the integration's newest `sync_finished` row (before `before`): a short backward seek."""
    prior = crm_sync_log.alias("prior")
    query = select(prior.c.outcome).where(
        prior.c.integration_id == integration_id, prior.c.event_type == "sync_finished"
    )
    if before is not None:
        query = query.where(_after(before, prior))
    return query.order_by(prior.c.occurred_at.desc(), prior.c.id.desc()).limit(1).scalar_subquery()


def streaks(conn: Connection, integration_ids: Sequence[int], fresh_after: int | None = None) -> list[Streak]:
    """Current streaks of these integrations, and the streaks ended by a completed row above `fresh_after`.

    A batch of integrations costs four queries. First the integrations whose newest sync is a failure, and
    the fresh completed rows that directly follow a failure (both cheap seeks: most syncs succeed, and they
    stop there). Then the failed rows of those: a failed row belongs to the current streak when no
    completed row follows it, and to a fresh completed row's streak when no completed row lies between
    them. The ended ones let a streak that reached the threshold and ended between two evaluations still
    raise its alert.
    """
    failed, later, ender, between = (crm_sync_log.alias(name) for name in ("failed", "later", "ender", "mid"))
    failing = (
        conn.execute(
            select(integrations.c.id).where(
                integrations.c.id.in_(integration_ids), _newest_finished_outcome(integrations.c.id) == "error"
            )
        )
        .scalars()
        .all()
    )
    enders = []
    if fresh_after is not None:
        enders = (
            conn.execute(
                select(ender.c.id).where(
                    ender.c.integration_id.in_(integration_ids),
                    ender.c.id > fresh_after,
                    _completed(ender),
                    _newest_finished_outcome(ender.c.integration_id, before=ender) == "error",
                )
            )
            .scalars()
            .all()
        )
    columns = (failed.c.integration_id, failed.c.id, failed.c.occurred_at, failed.c.message)
    is_failure = and_(failed.c.event_type == "sync_finished", failed.c.outcome == "error")
    groups: dict[tuple[int, int | None], list[Any]] = defaultdict(list)
    if failing:
        current = select(*columns).where(
            failed.c.integration_id.in_(failing),
            is_failure,
            ~exists().where(
                later.c.integration_id == failed.c.integration_id, _completed(later), _after(later, failed)
            ),
        )
        for row in conn.execute(current):
            groups[(row.integration_id, None)].append(row)
    if enders:
        ended = (
            select(ender.c.id.label("ender_id"), *columns)
            .select_from(failed.join(ender, ender.c.integration_id == failed.c.integration_id))
            .where(
                ender.c.id.in_(enders),
                is_failure,
                _after(ender, failed),
                ~exists().where(
                    between.c.integration_id == failed.c.integration_id,
                    _completed(between),
                    _after(between, failed),
                    _after(ender, between),
                ),
            )
        )
        for row in conn.execute(ended):
            groups[(row.integration_id, row.ender_id)].append(row)
    result = []
    for (integration_id, ender_id), rows in groups.items():
        rows.sort(key=lambda row: (row.occurred_at, row.id))
        result.append(
            Streak(
                integration_id=integration_id,
                first_log_id=rows[0].id,
                count=len(rows),
                last_message=rows[-1].message,
                last_at=rows[-1].occurred_at,
                ended=ender_id is not None,
            )
        )
    return result


# ---------------------------------------------------------------------------------------------- outbox


def _insert(conn: Connection, table: Table) -> Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


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


def failure_message(recipient: Recipient, streak: Streak, settings: AlertSettings) -> tuple[str, str, str]:
    """Subject, body and in-app text of a failure alert."""
    error = streak.last_message.strip() or "No error message was recorded."
    when = london_time(streak.last_at, utcnow())
    subject = f"NurtureHub: {recipient.label} has failed to sync {streak.count} times in a row"
    body = (
        f"Hello,\n\n"
        f"NurtureHub has failed to sync {recipient.label} {streak.count} times in a row.\n\n"
        f"The last error (at {when}, UK time):\n{error}\n\n"
        f"See what went wrong, and retry the sync, on your integrations page:\n{page_url(settings)}\n\n"
        f"We will email you again when syncing resumes.\n\n"
        f"NurtureHub\n"
    )
    in_app = f"{recipient.label} has failed to sync {streak.count} times in a row: {error}"
    return subject, body, in_app


def recovery_message(recipient: Recipient, settings: AlertSettings) -> tuple[str, str, str]:
    """Subject, body and in-app text of a recovery email."""
    subject = f"NurtureHub: {recipient.label} is syncing again"
    body = (
        f"Hello,\n\n"
        f"Syncing has resumed for {recipient.label}: its latest sync completed.\n\n"
        f"Your integrations page:\n{page_url(settings)}\n\n"
        f"NurtureHub\n"
    )
    return subject, body, f"{recipient.label} is syncing again."


def _add_alerts(conn: Connection, alerts: list[tuple[str, str, Recipient, tuple[str, str, str]]]) -> int:
    """Insert outbox rows that don't exist yet, and an in-app notification for each one that was new."""
    if not alerts:
        return 0
    inserted = conn.execute(
        _insert(conn, alert_outbox)
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


def evaluate(
    conn: Connection, integration_ids: Sequence[int], settings: AlertSettings, fresh_after: int | None = None
) -> Evaluation:
    """Write the alerts these integrations' logs call for and that the outbox doesn't hold yet.

    A streak of `failure_threshold` or more raises one failure alert. A failure alert whose streak is no
    longer the current one (a completed sync came after it) gets one recovery.
    """
    found = streaks(conn, integration_ids, fresh_after)
    current = {s.integration_id: s.first_log_id for s in found if not s.ended}
    due = {failure_key(s.integration_id, s.first_log_id): s for s in found if s.count >= settings.failure_threshold}
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
    who = recipients(conn, {s.integration_id for s in new_failures} | {i for i, _ in recovered})
    missing = ({s.integration_id for s in new_failures} | {i for i, _ in recovered}) - who.keys()
    if missing:
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


# ------------------------------------------------------------------------------------ new rows (watermark)


def _load_cursor(conn: Connection) -> dict[str, Any] | None:
    value = conn.execute(
        select(sensor_cursors.c.value).where(sensor_cursors.c.name == CURSOR_NAME)
    ).scalar_one_or_none()
    return json.loads(value) if value else None


def _save_cursor(conn: Connection, value: dict[str, Any]) -> None:
    stmt = _insert(conn, sensor_cursors).values(name=CURSOR_NAME, value=json.dumps(value), updated_at=utcnow())
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"], set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
        )
    )


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def evaluate_new_rows(engine: Engine, settings: AlertSettings, now: datetime | None = None) -> Evaluation:
    """Evaluate every integration with `sync_finished` rows above the watermark, then move the watermark.

    The first evaluation of a database looks at every integration's current streak (and at streaks that
    ended in the last hour), so an existing deployment's history does not flood its owners.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        state = _load_cursor(conn)
        max_id = conn.execute(select(func.max(crm_sync_log.c.id))).scalar() or 0
        first_run = state is None or state["low"] > max_id  # or the log was emptied
        if first_run:
            fresh_after = (
                conn.execute(
                    select(func.max(crm_sync_log.c.id)).where(crm_sync_log.c.occurred_at < now - FIRST_RUN_WINDOW)
                ).scalar()
                or 0
            )
            state = {"low": fresh_after, "marks": []}
            candidates = list(conn.execute(select(integrations.c.id).order_by(integrations.c.id)).scalars())
        else:
            fresh_after = state["low"]
            candidates = list(
                conn.execute(
                    select(crm_sync_log.c.integration_id)
                    .where(crm_sync_log.c.id > fresh_after, crm_sync_log.c.event_type == "sync_finished")
                    .distinct()
                ).scalars()
            )
    total = Evaluation()
    for chunk in _chunks(sorted(candidates)):
        with engine.begin() as conn:
            done = evaluate(conn, chunk, settings, fresh_after)
        total = Evaluation(
            total.integrations + done.integrations, total.alerts + done.alerts, total.recoveries + done.recoveries
        )
    # marks: [when an id was first seen as the newest, that id]; the watermark passes it WATERMARK_LAG later.
    marks = list(state["marks"])
    if max_id > (marks[-1][1] if marks else state["low"]):
        marks.append([now.timestamp(), max_id])
    low = state["low"]
    while marks and marks[0][0] <= (now - WATERMARK_LAG).timestamp():
        low = max(low, marks.pop(0)[1])
    if first_run or {"low": low, "marks": marks} != state:  # an idle tick writes nothing
        with engine.begin() as conn:
            _save_cursor(conn, {"low": low, "marks": marks})
    return total


# ---------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://host:port`, `smtp+starttls://user:pass@host:port` (and `smtps://` for implicit TLS)."""
    parts = urlsplit(url)
    schemes = {"smtp": (False, False, 25), "smtp+starttls": (True, False, 587), "smtps": (False, True, 465)}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(
            f"NURTUREHUB_SMTP_URL must look like smtp://host:port or smtp+starttls://user:pass@host:port, "
            f"not {parts.scheme}://…"
        )
    starttls, ssl, default_port = schemes[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        starttls=starttls,
        ssl=ssl,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _connect(target: SmtpTarget) -> smtplib.SMTP:
    client = (smtplib.SMTP_SSL if target.ssl else smtplib.SMTP)(target.host, target.port, timeout=15)
    try:
        if target.starttls:
            client.starttls()
        if target.username:
            client.login(target.username, target.password or "")
    except BaseException:
        client.close()
        raise
    return client


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, 40 s, then once a minute."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS))


def _claim(engine: Engine, now: datetime, limit: int, skip: Iterable[int] = ()) -> list[Any]:
    """Take due unsent rows for one lease; SKIP LOCKED keeps two senders off the same rows on PostgreSQL.

    `skip`: rows this delivery already tried, so one call never sends a row twice.
    """
    due = and_(
        alert_outbox.c.sent_at.is_(None),
        or_(alert_outbox.c.next_attempt_at.is_(None), alert_outbox.c.next_attempt_at <= now),
        alert_outbox.c.id.not_in(list(skip)),
    )
    ids = select(alert_outbox.c.id).where(due).order_by(alert_outbox.c.id).limit(limit)
    with engine.begin() as conn:
        rows = conn.execute(
            update(alert_outbox)
            .where(alert_outbox.c.id.in_(ids.with_for_update(skip_locked=True).scalar_subquery()), due)
            .values(next_attempt_at=now + LEASE)
            .returning(
                alert_outbox.c.id,
                alert_outbox.c.dedupe_key,
                alert_outbox.c.to_email,
                alert_outbox.c.subject,
                alert_outbox.c.body,
                alert_outbox.c.attempts,
            )
        ).all()
    return sorted(rows, key=lambda row: row.id)


def _message(row: Any, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_email
    message["Subject"] = row.subject
    message["Date"] = format_datetime(utcnow())
    # The same id on every attempt, so a mail client can fold a resend after a crash mid-send.
    message["Message-ID"] = f"<{row.dedupe_key.replace(':', '.')}@nurturehub>"
    message.set_content(row.body)
    return message


def _mark_sent(engine: Engine, row: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(alert_outbox)
            .where(alert_outbox.c.id == row.id)
            .values(sent_at=utcnow(), attempts=row.attempts + 1, next_attempt_at=None, last_error=None)
        )


def _mark_failed(engine: Engine, rows: Sequence[Any], error: BaseException) -> None:
    now = utcnow()
    with engine.begin() as conn:
        for row in rows:
            conn.execute(
                update(alert_outbox)
                .where(alert_outbox.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    next_attempt_at=now + retry_delay(row.attempts + 1),
                    last_error=f"{type(error).__name__}: {error}"[:1000],
                )
            )


def deliver(engine: Engine, settings: AlertSettings, batch: int = 100, budget_seconds: float = 25.0) -> Delivery:
    """Send due outbox rows over one SMTP connection, marking each sent as soon as the server took it.

    Without NURTUREHUB_SMTP_URL nothing is sent: alerts stay in the outbox (and in-app).
    A refused message or a dropped connection backs that row off; the rest of the batch goes on.
    """
    if not settings.smtp_url:
        return Delivery()
    target = parse_smtp_url(settings.smtp_url)
    sent = failed = 0
    deadline = time.monotonic() + budget_seconds
    client: smtplib.SMTP | None = None
    tried: set[int] = set()
    try:
        while time.monotonic() < deadline:
            rows = _claim(engine, utcnow(), batch, tried)
            if not rows:
                break
            tried.update(row.id for row in rows)
            if client is None:
                try:
                    client = _connect(target)
                except (smtplib.SMTPException, OSError) as exc:
                    log.warning("SMTP server unavailable (%s); %d alerts wait for a retry", exc, len(rows))
                    _mark_failed(engine, rows, exc)
                    return Delivery(sent, failed + len(rows))
            for index, row in enumerate(rows):
                try:
                    client.send_message(_message(row, settings.alert_from))
                except (smtplib.SMTPServerDisconnected, OSError) as exc:
                    # The connection is gone (or never came): give the rest of the batch back for later.
                    log.warning("SMTP delivery failed (%s); %d alerts wait for a retry", exc, len(rows) - index)
                    _mark_failed(engine, rows[index:], exc)
                    failed += len(rows) - index
                    client = None
                    return Delivery(sent, failed)
                except smtplib.SMTPException as exc:
                    log.warning("SMTP refused alert %s: %s", row.dedupe_key, exc)
                    _mark_failed(engine, [row], exc)
                    failed += 1
                else:
                    _mark_sent(engine, row)
                    sent += 1
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    return Delivery(sent, failed)


def run_once(engine: Engine, settings: AlertSettings | None = None) -> tuple[Evaluation, Delivery]:
    """One alert tick: evaluate the new log rows, then deliver what is due."""
    settings = settings or AlertSettings.from_env()
    evaluation = evaluate_new_rows(engine, settings)
    return evaluation, deliver(engine, settings)
