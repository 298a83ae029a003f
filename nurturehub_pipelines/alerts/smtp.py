"""The SMTP server named by `NURTUREHUB_SMTP_URL`, and a connection to it.

The URL carries the password, so neither it nor the parsed target is ever logged: `SmtpTarget` leaves
the password out of its repr, and errors name the scheme only.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

CONNECT_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://host:port`, `smtp+starttls://user:pass@host:port` (and `smtps://` for implicit TLS)."""
    parts = urlsplit(url)
    schemes = {"smtp": (False, False, 25), "smtp+starttls": (True, False, 587), "smtps": (False, True, 465)}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(
            f"NURTUREHUB_SMTP_URL must look like smtp://host:port or smtp+starttls://user:pass@host:port, "
            f"not {parts.scheme}://…"
        )
    starttls, ssl, default_port = schemes[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        starttls=starttls,
        ssl=ssl,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def connect(target: SmtpTarget) -> smtplib.SMTP:
    """A logged-in connection (STARTTLS first where the URL asks for it); closed again if any step fails."""
    kind = smtplib.SMTP_SSL if target.ssl else smtplib.SMTP
    client = kind(target.host, target.port, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        if target.starttls:
            client.starttls()
        if target.username:
            client.login(target.username, target.password or "")
    except BaseException:
        client.close()
        raise
    return client
