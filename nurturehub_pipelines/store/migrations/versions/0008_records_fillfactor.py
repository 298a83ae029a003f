"""records: leave half of each contacts/leads page free, so a sync's updates stay on their page

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:20:00

A sync that changes every record (a CRM's bulk edit, a re-import) used to make each update a new row
version on a new page, with a new entry in both indexes: with no VACUUM in between (autovacuum off, or
behind), the table and its indexes grew by a full copy each round and every merge was slower than the last
(bench/README.md, "Round over round"). With `fillfactor = 50` an update finds room on its own page (a HOT
update: no index entry), and PostgreSQL prunes the page's dead versions itself the next time it needs the
room, so the tables stay one live copy plus one round of dead versions, whatever VACUUM does. The price is
disk: a page holds half the rows until the first update. Existing pages keep their packing until rewritten
(`VACUUM FULL contacts, leads` applies it at once, under a lock); new pages follow the setting. SQLite has no
fillfactor: nothing to do there.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("contacts", "leads")
FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
