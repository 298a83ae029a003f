"""Alembic environment: runs against the connection `store.db.upgrade()` hands it."""

from alembic import context
from sqlalchemy import Connection

from nurturehub_pipelines.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite ALTERs need batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # the `alembic` command line, given only a URL
    from sqlalchemy import create_engine

    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("set sqlalchemy.url, or run migrations through `nurturehub db upgrade`")
    with create_engine(url).connect() as conn:
        run(conn)
