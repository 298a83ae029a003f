"""Sending the outbox: claim due rows, send them over one SMTP connection, mark each sent or backed off.

An SMTP outage delays an email and never loses one: a row is only marked sent once the server took it,
and a failed try backs the row off (5 s doubling to once a minute). A message that cannot be built or
that the server refuses fails alone, marked with its reason; the rest of the batch goes on. One that can
never be delivered as it is (unbuildable, or its address refused with a 5xx) is not tried again. Claims are
leases, so two senders (or a sender that died mid-send) never send a row twice in one lease.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, or_, select, update

from nurturehub_pipelines.alerts.smtp import connect, parse_smtp_url
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store.accounts import AccountError
from nurturehub_pipelines.store.tables import alert_outbox, utcnow
from nurturehub_pipelines.store.validation import check_email

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)  # a claimed row is retried after this if its sender died mid-send
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 60  # an outage of hours costs one attempt a minute, and mail leaves soon after it ends
BATCH = 100
# The `next_attempt_at` of a row that cannot be delivered as it is (a message the email package refuses,
# an address the server refuses for good with a 5xx): marked with its reason and never tried again, so a
# refused address is not resent in a loop, while a 4xx (try later) backs off and is retried.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
NOT_RETRIED = "Not retried: "


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    failed: int = 0


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, 40 s, then once a minute."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS))


def _due(now: datetime) -> ColumnElement[bool]:
    """Unsent, and neither backed off nor leased past `now`."""
    return and_(
        alert_outbox.c.sent_at.is_(None),
        or_(alert_outbox.c.next_attempt_at.is_(None), alert_outbox.c.next_attempt_at <= now),
    )


def has_due(engine: Engine, now: datetime | None = None) -> bool:
    """Whether a delivery would find something to send now."""
    with engine.connect() as conn:
        return conn.execute(select(alert_outbox.c.id).where(_due(now or utcnow())).limit(1)).first() is not None


def _claim(engine: Engine, now: datetime, limit: int, skip: Iterable[int] = ()) -> list[Any]:
    """Take due unsent rows for one lease; SKIP LOCKED keeps two senders off the same rows on PostgreSQL.

    `skip`: rows this delivery already tried, so one call never sends a row twice.
    """
    due = and_(_due(now), alert_outbox.c.id.not_in(list(skip)))
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
    """The email of an outbox row; ValueError when it cannot be built (the address is read back, and checked)."""
    try:
        to_email = check_email(row.to_email)
    except AccountError as exc:
        raise ValueError(f"the owner's address is not valid: {exc}") from None
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to_email
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


def refused_for_good(error: BaseException) -> bool:
    """A recipient the server refused with a permanent (5xx) answer: trying again would only repeat it."""
    if not isinstance(error, smtplib.SMTPRecipientsRefused) or not error.recipients:
        return False
    return all(500 <= code < 600 for code, _ in error.recipients.values())


def _mark_failed(engine: Engine, rows: Sequence[Any], error: BaseException, permanent: bool = False) -> None:
    now = utcnow()
    reason = f"{NOT_RETRIED if permanent else ''}{type(error).__name__}: {error}"[:1000]
    with engine.begin() as conn:
        for row in rows:
            conn.execute(
                update(alert_outbox)
                .where(alert_outbox.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    next_attempt_at=NEVER if permanent else now + retry_delay(row.attempts + 1),
                    last_error=reason,
                )
            )


@dataclass(frozen=True)
class _Failed:
    error: BaseException
    connection_lost: bool  # else the server refused this message only, and the connection goes on


def _send(client: smtplib.SMTP, message: EmailMessage) -> _Failed | None:
    try:
        client.send_message(message)
    except smtplib.SMTPServerDisconnected as exc:
        return _Failed(exc, connection_lost=True)
    except smtplib.SMTPException as exc:  # an OSError too: a refusal is told apart before a lost socket
        return _Failed(exc, connection_lost=False)
    except OSError as exc:
        return _Failed(exc, connection_lost=True)
    return None


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


Logger = logging.Logger | logging.LoggerAdapter[Any]


def deliver(
    engine: Engine,
    settings: AlertSettings,
    batch: int = BATCH,
    budget_seconds: float = 60.0,
    logger: Logger = log,
) -> Delivery:
    """Send due outbox rows over one SMTP connection until none is due or the budget is spent.

    Without NURTUREHUB_SMTP_URL nothing is sent: alerts stay in the outbox (and in-app). A dropped
    connection gives the rest of the batch back for a retry and ends this delivery. `logger`: where a
    refused or delayed alert is reported (a run's own log, when a job delivers).
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
                    client = connect(target)
                except (smtplib.SMTPException, OSError) as exc:
                    logger.warning("SMTP server unavailable (%s); %d alerts wait for a retry", exc, len(rows))
                    _mark_failed(engine, rows, exc)
                    return Delivery(sent, failed + len(rows))
            for index, row in enumerate(rows):
                try:
                    message = _message(row, settings.alert_from)
                except (ValueError, TypeError) as exc:  # a header the email package refuses
                    logger.warning("Alert %s cannot be built: %s", row.dedupe_key, exc)
                    _mark_failed(engine, [row], exc, permanent=True)
                    failed += 1
                    continue
                failure = _send(client, message)
                if failure is None:
                    _mark_sent(engine, row)
                    sent += 1
                elif not failure.connection_lost:
                    logger.warning("SMTP refused alert %s: %s", row.dedupe_key, failure.error)
                    _mark_failed(engine, [row], failure.error, permanent=refused_for_good(failure.error))
                    failed += 1
                else:  # give the rest of the batch back for later
                    left = len(rows) - index
                    logger.warning("SMTP delivery failed (%s); %d alerts wait for a retry", failure.error, left)
                    _mark_failed(engine, rows[index:], failure.error)
                    client.close()
                    client = None
                    return Delivery(sent, failed + left)
    finally:
        if client is not None:
            _quit(client)
    return Delivery(sent, failed)
