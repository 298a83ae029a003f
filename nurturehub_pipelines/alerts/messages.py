"""The words of an alert: the email's subject and body and the in-app line, for a failure and a recovery.

Written once, when the alert enters the outbox, so a retried email says exactly what the first try said.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_resources.core.london import london_time
from crm_resources.registry import crm_name
from nurturehub_pipelines.alerts.streaks import Streak
from nurturehub_pipelines.settings import PAGE_PATH, AlertSettings
from nurturehub_pipelines.store.tables import utcnow
from nurturehub_pipelines.store.validation import NAME_MAX, is_valid_name

# subject, body, in-app text
Message = tuple[str, str, str]


@dataclass(frozen=True)
class Recipient:
    """An integration and its organisation's owner: the only person who gets alert emails."""

    integration_id: int
    org_id: int
    crm: str
    name: str
    user_id: int
    email: str

    @property
    def label(self) -> str:
        """The CRM's name, with the integration's own name where it differs (made safe for a header)."""
        product = crm_name(self.crm)
        name = safe_name(self.name)
        return product if not name or name == product else f"{product} ({name})"


def safe_name(name: str | None) -> str:
    """A name read back from the database, fit for an email header whoever wrote it.

    The input rules keep control characters and overlong names out at every entry point, but other writers
    of the database exist: such a name loses its control characters and is cut to the rule's length, so its
    alert is still sent (and every other alert with it). An empty result falls back to the CRM's name.
    """
    if not name or is_valid_name(name):
        return name or ""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    return cleaned if len(cleaned) <= NAME_MAX else cleaned[: NAME_MAX - 1].rstrip() + "…"


def page_url(settings: AlertSettings) -> str:
    return settings.base_url + PAGE_PATH


def failure_message(recipient: Recipient, streak: Streak, settings: AlertSettings) -> Message:
    """Subject, body and in-app text of a failure alert."""
    error = streak.last_message.strip() or "No error message was recorded."
    when = london_time(streak.last_at, utcnow())
    subject = f"NurtureHub: {recipient.label} has failed to sync {streak.count} times in a row"
    body = (
        f"Hello,\n\n"
        f"NurtureHub has failed to sync {recipient.label} {streak.count} times in a row.\n\n"
        f"The last error (at {when}, UK time):\n{error}\n\n"
        f"See what went wrong, and retry the sync, on your integrations page:\n{page_url(settings)}\n\n"
        f"We will email you again when syncing resumes.\n\n"
        f"NurtureHub\n"
    )
    in_app = f"{recipient.label} has failed to sync {streak.count} times in a row: {error}"
    return subject, body, in_app


def recovery_message(recipient: Recipient, settings: AlertSettings) -> Message:
    """Subject, body and in-app text of a recovery email."""
    subject = f"NurtureHub: {recipient.label} is syncing again"
    body = (
        f"Hello,\n\n"
        f"Syncing has resumed for {recipient.label}: its latest sync completed.\n\n"
        f"Your integrations page:\n{page_url(settings)}\n\n"
        f"NurtureHub\n"
    )
    return subject, body, f"{recipient.label} is syncing again."
