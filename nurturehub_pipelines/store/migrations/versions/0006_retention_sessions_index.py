"""retention: index web_sessions by expiry

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:10:00

The daily prune deletes expired browser sessions (`sessions.prune_expired`); with this index that delete is
a range scan of the expired rows, like every other statement of the prune, instead of a scan of the table.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_expires", table_name="web_sessions")
