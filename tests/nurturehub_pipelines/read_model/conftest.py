from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection

from nurturehub_pipelines.store import accounts, db


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with db.engine(db_url).begin() as connection:
        yield connection


@pytest.fixture
def iid(conn: Connection) -> int:
    org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
    return accounts.add_integration(conn, org["org_id"], "reapit", "Reapit", {"customer_id": "HBR"}, {})
