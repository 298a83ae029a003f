"""The Dagster resources of everything a run, schedule or sensor touches besides the CRM itself."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar
from sqlalchemy import Engine

from nurturehub_pipelines.store import db


class AppDatabase(ConfigurableResource):
    """The app database (`NURTUREHUB_DATABASE_URL`); unset, the embedded SQLite under `NURTUREHUB_HOME`.

    Engines are cached per URL, so every op, schedule and sensor of a process shares one pool.
    """

    url: str | None = None

    def engine(self) -> Engine:
        return db.engine(self.url)


def app_database_from_env() -> AppDatabase:
    """`EnvVar` where the URL is set, so it stays out of run config and the UI; else the embedded default."""
    return (
        AppDatabase(url=EnvVar("NURTUREHUB_DATABASE_URL"))
        if os.environ.get("NURTUREHUB_DATABASE_URL")
        else AppDatabase()
    )
