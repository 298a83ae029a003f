"""running an integration: pause and quarantine, server-side sessions, indexes for retention

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:30:00

- integrations: who paused it and when (`enabled` stays the switch itself); the quarantine that stops
  scheduled syncs after an alerted streak ending in rejected credentials, with its reason in words; and
  the kind of the latest failed step (`auth`, `rate_limit`, …), which the quarantine rule reads.
- web_sessions: a cookie names a row here, so signing out, rotating a token or removing a user ends the
  session at once, server-side. Only a hash of the cookie's key is stored.
- Retention deletes old skipped records, finished requests and sent alerts by age: index those ages.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_by", sa.String(320), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("quarantine_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_failure_kind", sa.String(20), nullable=True))
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["user_id"])
    op.create_index("ix_skipped_records_occurred", "skipped_records", ["occurred_at"])
    op.create_index("ix_sync_requests_finished", "sync_requests", ["finished_at"])
    op.create_index("ix_alert_outbox_sent", "alert_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_sent", table_name="alert_outbox")
    op.drop_index("ix_sync_requests_finished", table_name="sync_requests")
    op.drop_index("ix_skipped_records_occurred", table_name="skipped_records")
    op.drop_index("ix_web_sessions_user", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        for column in ("last_failure_kind", "quarantine_reason", "quarantined_at", "paused_at", "paused_by"):
            batch_op.drop_column(column)
