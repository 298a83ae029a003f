"""Settings read from the environment, with the defaults DESIGN.md promises."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("NURTUREHUB_HOME", "./.nurturehub")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The app database URL; a plain postgresql:// URL is mapped to the driver we ship (psycopg2)."""
    return driver_url(os.environ.get("NURTUREHUB_DATABASE_URL") or f"sqlite:///{home() / 'nurturehub.db'}")


def driver_url(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; we ship psycopg2 (as dagster-postgres does)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain) :]
    return url


def dagster_home() -> Path:
    """DAGSTER_HOME for `nurturehub` commands: the embedded default lives under NURTUREHUB_HOME."""
    path = Path(os.environ.get("DAGSTER_HOME") or home() / "dagster")
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key() -> bytes:
    """The raw secret: NURTUREHUB_SECRET_KEY, else one generated once into NURTUREHUB_HOME."""
    value = os.environ.get("NURTUREHUB_SECRET_KEY")
    if value:
        return value.encode()
    key_file = home() / "secret_key"
    if not key_file.exists():
        _create_key_file(key_file)
    stored = key_file.read_text().strip()
    if not stored:
        # The final name only ever holds a whole key (below), so an empty one was left by something else.
        raise ValueError(  # a setting to fix, said in words like the others
            f"the secret key file {key_file} is empty: restore the key credentials were stored with, "
            "or delete the file to generate a new one and reconnect every integration"
        )
    return stored.encode()


def _create_key_file(key_file: Path) -> None:
    """Write a whole key under a temporary name, then link it into place: processes starting together on
    a fresh NURTUREHUB_HOME never see a half-written key, and a loser of the race keeps the winner's."""
    fd, temp = tempfile.mkstemp(prefix=".secret_key.", dir=key_file.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: read its key
            os.link(temp, key_file)  # atomic, and refuses to replace: the first link wins
    finally:
        os.unlink(temp)


def fernet_key() -> bytes:
    """Fernet wants 32 url-safe base64 bytes; derive them so any secret string works."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"nurturehub-credentials:" + secret_key()).digest())


# The alert settings' environment variables, and DESIGN.md's defaults: read by `AlertSettings.from_env` (the
# web app's base URL) and, as `EnvVar`s, by the `alert_delivery` resource, so both agree on names and defaults.
ALERT_ENV = {
    "base_url": "NURTUREHUB_BASE_URL",
    "smtp_url": "NURTUREHUB_SMTP_URL",
    "alert_from": "NURTUREHUB_ALERT_FROM",
    "failure_threshold": "NURTUREHUB_FAILURE_THRESHOLD",
}
DEFAULT_BASE_URL = "http://localhost:8000"
DEFAULT_ALERT_FROM = "alerts@localhost"
DEFAULT_FAILURE_THRESHOLD = 3


@dataclass(frozen=True)
class AlertSettings:
    """What an alert needs to be written and sent; values are normalised here, wherever they came from."""

    base_url: str = DEFAULT_BASE_URL
    smtp_url: str | None = None  # None: alerts stay in the outbox and in-app
    alert_from: str = DEFAULT_ALERT_FROM
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "smtp_url", self.smtp_url or None)

    @classmethod
    def from_env(cls) -> AlertSettings:
        """The variables that are set (an empty one counts as unset), DESIGN.md's defaults for the rest."""
        env = {field: os.environ.get(name) or None for field, name in ALERT_ENV.items()}
        return cls(
            base_url=env["base_url"] or DEFAULT_BASE_URL,
            smtp_url=env["smtp_url"],
            alert_from=env["alert_from"] or DEFAULT_ALERT_FROM,
            failure_threshold=int(env["failure_threshold"] or DEFAULT_FAILURE_THRESHOLD),
        )


def schedule_cron() -> str:
    return os.environ.get("NURTUREHUB_SCHEDULE_CRON", "0 */4 * * *")


SCHEDULE_TIMEZONE = "Europe/London"

# The integrations page: served by the web app, linked from every alert and printed by the demo.
PAGE_PATH = "/dashboard/settings/integrations"


# Retention (DESIGN.md "Retention"): how many days of sync history are kept.
LOG_RETENTION_ENV = "NURTUREHUB_LOG_RETENTION_DAYS"
DEFAULT_LOG_RETENTION_DAYS = 90
MAX_LOG_RETENTION_DAYS = 36500  # a century: beyond it the cutoff leaves the calendar


def retention_days(value: object, what: str = "--days") -> int:
    """A retention window as given (flag, env var, run config): a whole number of days from 1 up, or ValueError."""
    text = str(value).strip()
    if (
        isinstance(value, bool)
        or not (text.isascii() and text.isdigit())
        or not 1 <= int(text) <= MAX_LOG_RETENTION_DAYS
    ):
        raise ValueError(
            f"{what} must be a whole number of days from 1 to {MAX_LOG_RETENTION_DAYS}, not {str(value)[:40]!r}"
        )
    return int(text)


def log_retention_days() -> int:
    """NURTUREHUB_LOG_RETENTION_DAYS (an empty one counts as unset), else DESIGN.md's 90."""
    value = os.environ.get(LOG_RETENTION_ENV) or None
    return DEFAULT_LOG_RETENTION_DAYS if value is None else retention_days(value, LOG_RETENTION_ENV)
