"""the page stays fast as an organisation grows: a per-integration summary of crm_sync_log, kept by triggers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:00:00

`crm_sync_summary` (the failure streak) and `crm_sync_summary_rows` (the newest rows of each kind a card
reads) are maintained by triggers on `crm_sync_log` for INSERT, DELETE and UPDATE (`store/sync_summary`),
so that an organisation's cards are a fixed few statements on both engines, and stay right whatever writes
the log (a run, a person, another service, `integration remove`, retention). The upgrade backfills them
from the existing log with the card's own index seeks; the downgrade drops triggers and tables.
"""

import sqlalchemy as sa
from alembic import op

from nurturehub_pipelines.store import sync_summary

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_sync_summary",
        sa.Column("integration_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("card", sa.Text(), nullable=True),
    )
    op.create_table(
        "crm_sync_summary_rows",
        sa.Column("integration_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("tag", sa.String(10), primary_key=True),
        sa.Column("log_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(30), nullable=False),
        sa.Column("records_affected", sa.Integer(), nullable=False),
        sa.Column("records_skipped", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(20), nullable=False),
    )
    conn = op.get_bind()
    sync_summary.create_triggers(conn)
    sync_summary.rebuild(conn)


def downgrade() -> None:
    sync_summary.drop_triggers(op.get_bind())
    op.drop_table("crm_sync_summary_rows")
    op.drop_table("crm_sync_summary")
