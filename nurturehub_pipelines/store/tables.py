"""The app database as SQLAlchemy Core tables. `crm_sync_log`, `contacts` and `leads` are contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite has no BIGINT autoincrement: only INTEGER PRIMARY KEY is a rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite naive UTC as DateTime stores it, read back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


organisations = Table(
    "organisations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, ForeignKey("organisations.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("role", String(10), nullable=False),  # owner | admin | member
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("org_id", "email", name="uq_users_org_email"),
)
# "An organisation has exactly one owner", enforced by the database as well as the CLI.
Index(
    "uq_users_one_owner",
    users.c.org_id,
    unique=True,
    sqlite_where=users.c.role == "owner",
    postgresql_where=users.c.role == "owner",
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, ForeignKey("organisations.id"), nullable=False, index=True),
    Column("crm", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("settings", JSON, nullable=False, default=dict),
    Column("credentials_encrypted", Text, nullable=True),  # Fernet token; never shown again
    Column("enabled", Boolean, nullable=False, default=True),
    # When the CRM last said its rate-limit window is closed, and until when (Sync Now answers 429).
    Column("rate_limited_until", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    # Paused by a person (`enabled` false): who and when, for the card's paused_reason (0005).
    Column("paused_by", String(320), nullable=True),
    Column("paused_at", UTCDateTime, nullable=True),
    # Scheduled syncs stopped by the rejected-credentials rule, and why in words; cleared by a change of
    # credentials or settings, or a successful Sync Now / Retry (0005).
    Column("quarantined_at", UTCDateTime, nullable=True),
    Column("quarantine_reason", Text, nullable=True),
    # The ErrorKind of the latest failed step (auth, rate_limit, …); null after a completed sync (0005).
    Column("last_failure_kind", String(20), nullable=True),
)

crm_sync_log = Table(
    "crm_sync_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", Integer, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("trigger", String(20), nullable=False),
    Column("event_type", String(30), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("records_affected", Integer, nullable=False, default=0),
    Column("records_skipped", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False, default=utcnow),
)
# "Newest events of one integration": every read-model query walks this index backwards.
Index(
    "ix_crm_sync_log_integration_newest", crm_sync_log.c.integration_id, crm_sync_log.c.occurred_at, crm_sync_log.c.id
)
# The read model's "newest row of one kind" seeks (last completed sync, errors, failure streak): 0002.
Index(
    "ix_crm_sync_log_integration_kind_newest",
    crm_sync_log.c.integration_id,
    crm_sync_log.c.event_type,
    crm_sync_log.c.outcome,
    crm_sync_log.c.occurred_at,
    crm_sync_log.c.id,
)
# "Has this run finished?", asked for the run of each launched sync request: 0002.
Index(
    "ix_crm_sync_log_finished_run",
    crm_sync_log.c.run_id,
    sqlite_where=crm_sync_log.c.event_type == "sync_finished",
    postgresql_where=crm_sync_log.c.event_type == "sync_finished",
)

# What a card reads of the log, one integration at a time, kept by triggers on crm_sync_log (0007,
# `store/sync_summary`): never written by the code, so rows written from outside a run count too.
crm_sync_summary = Table(
    "crm_sync_summary",
    metadata,
    Column("integration_id", Integer, primary_key=True, autoincrement=False),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    # JSON: [newest completed, newest finished, newest errors, newest run row] (`sync_summary.derive_statement`)
    Column("card", Text, nullable=True),
)
# A copy of each log row among the newest of its tag (`sync_summary.TAGS`); `log_id` is its crm_sync_log id.
crm_sync_summary_rows = Table(
    "crm_sync_summary_rows",
    metadata,
    Column("integration_id", Integer, primary_key=True, autoincrement=False),
    Column("tag", String(10), primary_key=True),
    Column("log_id", BigInteger, primary_key=True, autoincrement=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("event_type", String(30), nullable=False),
    Column("records_affected", Integer, nullable=False),
    Column("records_skipped", Integer, nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("trigger", String(20), nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", Integer, nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("first_name", Text, nullable=True),
    Column("last_name", Text, nullable=True),
    Column("email", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("marketing_consent", String(10), nullable=False, default="unknown"),
    Column("source_updated_at", UTCDateTime, nullable=True),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("raw", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),  # of the raw record: unchanged rows are not rewritten
    Column("synced_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("integration_id", "external_id", name="uq_contacts_integration_external"),
)

leads = Table(
    "leads",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", Integer, nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("contact_external_id", String(200), nullable=True),
    Column("kind", String(10), nullable=False, default="unknown"),
    Column("status", Text, nullable=True),
    Column("source_updated_at", UTCDateTime, nullable=True),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("raw", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("synced_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("integration_id", "external_id", name="uq_leads_integration_external"),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("integration_id", Integer, primary_key=True),
    Column("stream", String(20), primary_key=True),  # contacts | leads
    Column("high_water", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

skipped_records = Table(
    "skipped_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", Integer, nullable=False, index=True),
    Column("run_id", String(64), nullable=True),
    Column("stream", String(20), nullable=False),
    Column("external_id", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", JSON, nullable=True),
    Column("occurred_at", UTCDateTime, nullable=False, default=utcnow),
)
Index("ix_skipped_records_occurred", skipped_records.c.occurred_at)  # retention (0005)

# Sync Now / Retry: a durable request a sensor turns into a run (run_key = id).
sync_requests = Table(
    "sync_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("integration_id", Integer, nullable=False),
    Column("trigger", String(20), nullable=False),  # sync_now | retry
    Column("requested_by", String(320), nullable=True),
    Column("requested_at", UTCDateTime, nullable=False, default=utcnow),
    Column("status", String(10), nullable=False, default="pending"),  # pending|launched|finished|expired
    Column("run_id", String(64), nullable=True),
    Column("launched_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
)
Index("ix_sync_requests_integration_status", sync_requests.c.integration_id, sync_requests.c.status)
Index("ix_sync_requests_status", sync_requests.c.status)
Index("ix_sync_requests_finished", sync_requests.c.finished_at)  # retention (0005)
# At most one active request per integration: two concurrent Sync Now clicks give one 202 and one 409 (0002).
Index(
    "uq_sync_requests_one_active",
    sync_requests.c.integration_id,
    unique=True,
    sqlite_where=sync_requests.c.status.in_(("pending", "launched")),
    postgresql_where=sync_requests.c.status.in_(("pending", "launched")),
)

# A signed-in browser: the cookie carries a random key, this row its sha256 (0005). Deleting the row ends
# the session at once: sign-out, a rotated token and a removed user all do.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_web_sessions_user", web_sessions.c.user_id)
Index("ix_web_sessions_expires", web_sessions.c.expires_at)  # retention: expired sessions (0006)

# Outbox: an alert is a row first and an email second, so an SMTP outage delays it and never loses it.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),  # one alert per streak
    Column("org_id", Integer, nullable=False),
    Column("integration_id", Integer, nullable=False),
    Column("kind", String(20), nullable=False),  # failure | recovered
    Column("to_email", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
)
Index("ix_alert_outbox_unsent", alert_outbox.c.sent_at, alert_outbox.c.next_attempt_at)
Index("ix_alert_outbox_sent", alert_outbox.c.sent_at)  # retention (0005)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", Integer, nullable=False, index=True),
    Column("user_id", Integer, nullable=False),
    Column("integration_id", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("read_at", UTCDateTime, nullable=True),
)
