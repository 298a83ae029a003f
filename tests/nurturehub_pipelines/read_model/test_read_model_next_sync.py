"""next_sync_at: the schedule's next tick in London time, as Dagster runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from read_model_log import NOW, card
from sqlalchemy import Connection, update

from nurturehub_pipelines import read_model
from nurturehub_pipelines.store.tables import integrations


def test_next_sync_at_follows_the_schedule_in_london(
    conn: Connection, iid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    summer = datetime(2026, 7, 1, 10, 30, tzinfo=UTC)  # 11:30 BST
    assert card(conn, iid, summer).next_sync_at == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)  # 12:00 BST
    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", "15 2 * * *")
    assert card(conn, iid, NOW).next_sync_at == datetime(2026, 3, 4, 2, 15, tzinfo=UTC)
    conn.execute(update(integrations).where(integrations.c.id == iid).values(enabled=False))
    assert card(conn, iid).next_sync_at is None


# 2026 in London: BST starts at 01:00 GMT on 29 March and ends at 02:00 BST (01:00 GMT) on 25 October.
SPRING, AUTUMN = datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)


def _at(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("cron", "now", "expected"),
    [
        # the default schedule keeps its London hours: 3 h apart in UTC across the spring change...
        ("0 */4 * * *", _at(SPRING, -0.5), _at(SPRING, 0)),  # 00:00 GMT
        ("0 */4 * * *", _at(SPRING, 0), _at(SPRING, 3)),  # 04:00 BST
        # ... and 5 h apart across the autumn one
        ("0 */4 * * *", _at(AUTUMN, -1.5), _at(AUTUMN, -1)),  # 00:00 BST
        ("0 */4 * * *", _at(AUTUMN, -1), _at(AUTUMN, 4)),  # 04:00 GMT
        # a time of day in the skipped hour runs at the end of the gap; in the repeated hour, at the later one
        ("30 1 * * *", _at(SPRING, 0), _at(SPRING, 1)),  # 02:00 BST
        ("30 1 * * *", _at(AUTUMN, -1), _at(AUTUMN, 1.5)),  # 01:30 GMT, not 01:30 BST
        # an hourly schedule drops the skipped tick and runs both repeated ones
        ("30 * * * *", _at(SPRING, 0.5), _at(SPRING, 1.5)),  # 00:30 GMT, then 02:30 BST
        ("30 * * * *", _at(AUTUMN, -0.5), _at(AUTUMN, 0.5)),  # 01:30 BST...
        ("30 * * * *", _at(AUTUMN, 0.5), _at(AUTUMN, 1.5)),  # ... then 01:30 GMT
    ],
)
def test_next_sync_at_across_a_dst_change(
    cron: str, now: datetime, expected: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", cron)
    assert read_model.next_sync_at(now) == expected


@pytest.mark.parametrize(
    "cron", ["0 */4 * * *", "15 2 * * *", "30 1 * * *", "0 1 * * 0", "0 1,13 * * *", "*/20 * * * *", "0 * * * *"]
)
def test_next_sync_at_is_the_tick_dagster_runs(cron: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every few minutes across both 2026 changes, the same tick as the schedule's own cron iterator."""
    from dagster._utils.schedules import cron_string_iterator  # the reference only: the runtime code uses croniter

    monkeypatch.setenv("NURTUREHUB_SCHEDULE_CRON", cron)
    for day in (SPRING, AUTUMN):
        for minutes in range(-180, 360, 7):
            now = day + timedelta(minutes=minutes)
            ticks = cron_string_iterator(now.timestamp(), cron, "Europe/London")
            dagster = next(tick for tick in ticks if tick > now).astimezone(UTC)  # UTC: a fold compares unequal
            assert read_model.next_sync_at(now) == dagster, (cron, now)
