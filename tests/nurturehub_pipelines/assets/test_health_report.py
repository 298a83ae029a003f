"""The daily sync health report, computed with pandas from a crafted crm_sync_log: its figures, checked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import materialize
from sqlalchemy import insert

from nurturehub_pipelines.assets.health_report import sync_health_report
from nurturehub_pipelines.assets.health_tables import load, report
from nurturehub_pipelines.resources import app_database_from_env
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import skipped_records, utcnow

T0 = utcnow() - timedelta(hours=2)
OLD = utcnow() - timedelta(days=3)  # outside the 24-hour window


@pytest.fixture
def crafted_log(db_url: str) -> None:
    with db.engine().begin() as conn:
        harbour = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")["org_id"]
        quay = accounts.create_org(conn, "Quay Estates", "owner@quay.example")["org_id"]
        h_reapit = accounts.add_integration(conn, harbour, "reapit", "Reapit", {}, {})
        h_street = accounts.add_integration(conn, harbour, "street", "Street", {}, {})
        q_reapit = accounts.add_integration(conn, quay, "reapit", "Reapit", {}, {})

        def run(integration: int, run_id: str | None, seconds: float, outcome: str, written: int, msg: str) -> None:
            start = OLD if run_id == "old" else T0
            if run_id is not None:
                event = dict(integration_id=integration, run_id=run_id, trigger="schedule", message="ok")
                write_event(conn, **event, event_type="auth_refresh", outcome="success", occurred_at=start)
                write_event(
                    conn, **event, event_type="contact_import", outcome="success",
                    occurred_at=start + timedelta(seconds=seconds / 2),
                )  # fmt: skip
            write_event(
                conn, integration_id=integration, run_id=run_id, trigger="schedule", event_type="sync_finished",
                outcome=outcome, message=msg, records_affected=written, occurred_at=start + timedelta(seconds=seconds),
            )  # fmt: skip

        run(h_reapit, "r1", 10, "success", 100, "Sync finished: 100 written")
        run(h_reapit, "r2", 20, "error", 0, "Reapit rejected the credentials")
        run(q_reapit, "r3", 30, "warning", 50, "Sync finished; 1 skipped")
        run(q_reapit, "r4", 40, "success", 5, "Sync finished")
        run(h_street, "r5", 5, "error", 0, "Street timed out")
        run(h_street, "r6", 7, "error", 0, "Street timed out")
        run(h_street, None, 0, "error", 0, "The run failed before writing its outcome")  # no run: no duration
        run(h_reapit, "old", 99, "error", 7, "Old failure")
        skip = dict(stream="contacts", raw={}, occurred_at=T0)
        conn.execute(
            insert(skipped_records),
            [
                {**skip, "integration_id": h_reapit, "reason": "missing email"},
                {**skip, "integration_id": h_reapit, "reason": "missing email"},
                {**skip, "integration_id": h_reapit, "reason": "bad phone"},
                {**skip, "integration_id": q_reapit, "reason": "bad phone"},
                {**skip, "integration_id": q_reapit, "reason": "old reason", "occurred_at": OLD},
            ],
        )


def test_per_crm_and_per_organisation_figures(crafted_log: None) -> None:
    since = utcnow() - timedelta(hours=24)
    with db.engine().connect() as conn:
        syncs, skipped = load(conn, since)
    text, by_crm, by_org = report(syncs, skipped, since)

    assert list(by_crm.index) == ["Reapit", "Street"]
    reapit, street = by_crm.loc["Reapit"], by_crm.loc["Street"]
    assert (reapit["syncs"], reapit["failure_rate"], reapit["records_written"]) == (4, 0.25, 155)
    assert (reapit["p50_seconds"], reapit["p95_seconds"]) == pytest.approx((25.0, 38.5))  # of 10, 20, 30, 40 s
    assert reapit["top_skips"] == "bad phone (2); missing email (2)"
    assert reapit["top_errors"] == "Reapit rejected the credentials (1)"
    assert (street["syncs"], street["failure_rate"], street["records_written"]) == (3, 1.0, 0)
    assert (street["p50_seconds"], street["p95_seconds"]) == pytest.approx((6.0, 6.9))  # the run-less row has none
    assert street["top_errors"] == "Street timed out (2); The run failed before writing its outcome (1)"
    assert street["top_skips"] == ""

    assert list(by_org.index) == ["Harbour Lettings", "Quay Estates"]
    harbour, quay = by_org.loc["Harbour Lettings"], by_org.loc["Quay Estates"]
    assert (harbour["syncs"], harbour["failure_rate"], harbour["records_written"]) == (5, 0.8, 100)
    assert (harbour["p50_seconds"], harbour["p95_seconds"]) == pytest.approx((8.5, 18.5))  # of 5, 7, 10, 20 s
    assert (quay["syncs"], quay["failure_rate"], quay["records_written"]) == (2, 0.0, 55)
    assert (quay["p50_seconds"], quay["p95_seconds"]) == pytest.approx((35.0, 39.5))
    assert quay["top_skips"] == "bad phone (1)" and quay["top_errors"] == ""

    assert "7 syncs, 4 failed." in text
    assert "| Reapit | 4 | 25% | 25.0 s | 38.5 s | 155 | bad phone (2); missing email (2) |" in text
    assert "| Quay Estates | 2 | 0% | 35.0 s | 39.5 s | 55 | bad phone (1) | — |" in text
    assert "Old failure" not in text and "old reason" not in text


def test_the_asset_materializes_the_report_as_markdown_metadata(crafted_log: None) -> None:
    result = materialize([sync_health_report], resources={"app_db": app_database_from_env()})
    assert result.success
    [materialization] = result.asset_materializations_for_node("sync_health_report")
    metadata = materialization.metadata
    assert "| Street | 3 | 100% | 6.0 s | 6.9 s | 0 | — | Street timed out (2);" in metadata["report"].value  # type: ignore[operator]
    assert (metadata["syncs"].value, metadata["failed_syncs"].value) == (7, 4)
    assert metadata["failure_rate"].value == pytest.approx(4 / 7, abs=1e-4)


def test_an_empty_log_gives_an_empty_report(db_url: str) -> None:
    result = materialize([sync_health_report], resources={"app_db": app_database_from_env()})
    [materialization] = result.asset_materializations_for_node("sync_health_report")
    assert "No sync finished in this window." in materialization.metadata["report"].value  # type: ignore[operator]
    assert materialization.metadata["syncs"].value == 0
