"""sensor cursors: the alert sensor's watermark in crm_sync_log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00

The alert sensor re-reads crm_sync_log from a watermark. It lives in the app database rather than in
Dagster's sensor cursor so that it always belongs to the log it points into: a new or recreated app
database starts from nothing instead of skipping its first rows.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_cursors",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sensor_cursors")),
    )


def downgrade() -> None:
    op.drop_table("sensor_cursors")
