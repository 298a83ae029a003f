"""drop sensor cursors: the alert sensor's watermark moves into its Dagster cursor

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00

One cursor mechanism: both sensors keep their progress in Dagster's sensor cursor. The watermark names
the log row it stands on, so it still never skips the rows of a recreated app database (the reason 0003
kept it beside the log). The old value is not carried over: the first tick after this migration evaluates
every integration's current streak afresh, and the outbox's dedupe keys keep it from repeating an alert.
"""

from alembic import context, op
from alembic.script import ScriptDirectory

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("sensor_cursors")


def downgrade() -> None:
    """The table as 0003 creates it: that revision's own upgrade, so the two can never disagree."""
    script = ScriptDirectory.from_config(context.config).get_revision("0003")
    assert script is not None and script.module is not None
    script.module.upgrade()
