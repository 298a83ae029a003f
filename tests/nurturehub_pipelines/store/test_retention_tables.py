"""Retention beyond the log: skipped records, sent alerts, finished requests and expired sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from nurturehub_pipelines.store import accounts, db, retention, sessions
from nurturehub_pipelines.store.tables import alert_outbox, skipped_records, sync_requests, web_sessions

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
OLD, NEW = NOW - timedelta(days=120), NOW - timedelta(days=10)


def world(engine: Engine) -> dict[str, object]:
    """Rows of every kind, old and new; returns the ids expected to stay."""
    with engine.begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        iids = [accounts.add_integration(conn, org["org_id"], "reapit", f"R{n}", {}, {}) for n in range(4)]
        skipped = [
            conn.execute(
                insert(skipped_records).returning(skipped_records.c.id),
                {"integration_id": iids[0], "stream": "contacts", "reason": "no name", "occurred_at": at},
            ).scalar_one()
            for at in (OLD, OLD, NEW)
        ]

        def alert(key: str, kind: str, sent: datetime | None) -> str:
            conn.execute(
                insert(alert_outbox),
                {"dedupe_key": key, "org_id": org["org_id"], "integration_id": iids[0], "kind": kind,
                 "to_email": "owner@harbour.example", "subject": "s", "body": "b", "created_at": sent or OLD,
                 "sent_at": sent},
            )  # fmt: skip
            return key

        alerts_gone = [alert("failure:1:10", "failure", OLD), alert("recovered:1:10", "recovered", OLD)]
        alerts_kept = [
            alert("failure:1:20", "failure", OLD),  # its streak goes on: no recovery yet
            alert("failure:1:30", "failure", NEW),  # recovered, but the failure is recent: both stay
            alert("recovered:1:30", "recovered", OLD - timedelta(days=1)),
            alert("failure:1:40", "failure", None),  # never sent (SMTP down)
            alert("recovered:1:50", "recovered", NEW),
        ]

        def request(iid: int, status: str, finished: datetime | None) -> str:
            rid = f"{status}-{iid}-{finished and finished.date()}"
            conn.execute(
                insert(sync_requests),
                {"id": rid, "integration_id": iid, "trigger": "sync_now", "requested_at": finished or OLD,
                 "status": status, "finished_at": finished},
            )  # fmt: skip
            return rid

        requests_gone = [request(iids[0], "finished", OLD), request(iids[1], "expired", OLD)]
        requests_kept = [request(iids[2], "finished", NEW), request(iids[3], "pending", None)]
        expired = sessions.open_session(conn, org["owner_user_id"], NOW - timedelta(days=2), timedelta(hours=12))
        live = sessions.open_session(conn, org["owner_user_id"], NOW - timedelta(hours=1), timedelta(hours=12))
    return {
        "skipped": skipped[2:],
        "alerts": sorted(alerts_kept),
        "requests": sorted(requests_kept),
        "sessions": (expired, live),
        "gone": (alerts_gone, requests_gone),
    }


def test_old_skips_sent_alerts_finished_requests_and_expired_sessions_go_the_rest_stays(db_url: str) -> None:
    engine = db.engine(db_url)
    expected = world(engine)

    pruned = retention.prune(engine, 90, now=NOW, batch=1)

    assert pruned.deleted == {
        "crm_sync_log": 0,
        "skipped_records": 2,
        "alert_outbox": 2,
        "sync_requests": 2,
        "web_sessions": 1,
    }
    with engine.connect() as conn:
        assert list(conn.execute(select(skipped_records.c.id)).scalars()) == expected["skipped"]
        assert sorted(conn.execute(select(alert_outbox.c.dedupe_key)).scalars()) == expected["alerts"]
        assert sorted(conn.execute(select(sync_requests.c.id)).scalars()) == expected["requests"]
        assert len(conn.execute(select(web_sessions.c.id)).all()) == 1
        expired, live = expected["sessions"]  # type: ignore[misc]
        assert sessions.session_user(conn, live, NOW) is not None
    assert retention.prune(engine, 90, now=NOW).deleted == dict.fromkeys(retention.TABLES, 0)  # nothing twice


def test_a_recovery_whose_failure_alert_went_goes_on_the_next_prune(db_url: str) -> None:
    engine = db.engine(db_url)
    world(engine)
    retention.prune(engine, 90, now=NOW)
    # 100 days on, the recent recovered streak's failure alert is old too: the pair goes, failure first.
    later = retention.prune(engine, 90, now=NOW + timedelta(days=100))
    with engine.connect() as conn:
        left = sorted(conn.execute(select(alert_outbox.c.dedupe_key)).scalars())
    assert left == ["failure:1:20", "failure:1:40"]  # a streak with no recovery, and an unsent alert
    assert later.deleted["alert_outbox"] == 3
