"""Moving a test's app database between Alembic revisions, on the connection `store.db.upgrade` would use."""

from __future__ import annotations

from alembic import command

from nurturehub_pipelines.store import db


def migrate(url: str, direction: str, revision: str) -> None:
    """`direction` is "upgrade" or "downgrade"; `revision` as Alembic takes it ("0006", "head")."""
    engine = db.engine(url)
    config = db.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, revision)
