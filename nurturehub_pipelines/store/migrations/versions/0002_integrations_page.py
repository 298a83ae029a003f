"""integrations page: read-model indexes and one active sync request per integration

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00

The read model answers every card field with bounded index seeks, whatever the size of crm_sync_log:
- (integration_id, event_type, outcome, occurred_at, id) turns "newest sync_finished whose outcome is
  success", "the 5 newest errors of type X" and "failures since the last completed sync" into seeks;
- a partial index on run_id for sync_finished rows answers "has this request's run finished?".
The partial unique index on sync_requests makes the 409 race-safe: of two concurrent Sync Now clicks,
the database lets exactly one insert an active (pending or launched) request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'launched')")
FINISHED = sa.text("event_type = 'sync_finished'")


def upgrade() -> None:
    with op.batch_alter_table("crm_sync_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_sync_log_integration_kind_newest",
            ["integration_id", "event_type", "outcome", "occurred_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_crm_sync_log_finished_run",
            ["run_id"],
            unique=False,
            sqlite_where=FINISHED,
            postgresql_where=FINISHED,
        )
    with op.batch_alter_table("sync_requests", schema=None) as batch_op:
        batch_op.create_index(
            "uq_sync_requests_one_active",
            ["integration_id"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_sync_requests_one_active", sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    with op.batch_alter_table("crm_sync_log", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_sync_log_finished_run", sqlite_where=FINISHED, postgresql_where=FINISHED)
        batch_op.drop_index("ix_crm_sync_log_integration_kind_newest")
