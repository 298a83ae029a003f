"""An organisation with an owner, an admin and a member, its sync log and its outbox: for the alert tests.

`AlertLoop` is the alert cycle without Dagster, as the package promises it can be run: evaluate the new
log rows against a watermark the caller keeps (the sensor keeps it in its cursor), then deliver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from nurturehub_pipelines import alerts
from nurturehub_pipelines.settings import AlertSettings
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import alert_outbox, integrations, notifications

BASE_URL = "https://app.nurturehub.example"
LINK = f"{BASE_URL}/dashboard/settings/integrations"
OWNER = "owner@harbour.example"


@dataclass
class Org:
    org_id: int
    owner_id: int

    def integration(self, crm: str = "reapit", name: str = "Reapit", settings: dict[str, Any] | None = None) -> int:
        """Written as another writer would (straight into the table): the names the input rules refuse can
        still reach the alerts that way, and must not stop them."""
        with db.engine().begin() as conn:
            return conn.execute(
                insert(integrations)
                .values(org_id=self.org_id, crm=crm, name=name, settings=settings or {}, enabled=True)
                .returning(integrations.c.id)
            ).scalar_one()


def create_org() -> Org:
    """Only the owner may be emailed: the admin and the member are there to prove it."""
    with db.engine().begin() as conn:
        created = accounts.create_org(conn, "Harbour Lettings", OWNER)
        accounts.add_user(conn, created["org_id"], "admin@harbour.example", "admin")
        accounts.add_user(conn, created["org_id"], "member@harbour.example", "member")
    return Org(created["org_id"], created["owner_user_id"])


def finish(integration_id: int, outcome: str, message: str = "", times: int = 1) -> None:
    with db.engine().begin() as conn:
        for _ in range(times):
            write_event(
                conn,
                integration_id=integration_id,
                event_type="sync_finished",
                outcome=outcome,
                message=message,
                trigger="schedule",
            )


def fail(
    integration_id: int, times: int = 1, message: str = "Reapit rejected the credentials: reconnect Reapit"
) -> None:
    finish(integration_id, "error", message, times)


def outbox() -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        return [dict(row) for row in conn.execute(select(alert_outbox).order_by(alert_outbox.c.id)).mappings()]


def in_app() -> list[dict[str, object]]:
    with db.engine().connect() as conn:
        return [dict(row) for row in conn.execute(select(notifications).order_by(notifications.c.id)).mappings()]


@dataclass
class AlertLoop:
    """Evaluate, then deliver; `watermark` is what the sensor's cursor would hold between ticks."""

    watermark: alerts.Watermark | None = None
    evaluations: list[alerts.Evaluation] = field(default_factory=list)

    def evaluate(self) -> alerts.Evaluation:
        evaluation, self.watermark = alerts.evaluate_new_rows(db.engine(), AlertSettings.from_env(), self.watermark)
        self.evaluations.append(evaluation)
        return evaluation

    def tick(self) -> tuple[alerts.Evaluation, alerts.Delivery]:
        evaluation = self.evaluate()
        return evaluation, alerts.deliver(db.engine(), AlertSettings.from_env())
