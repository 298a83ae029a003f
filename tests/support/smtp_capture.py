"""A real SMTP server on loopback that keeps what it receives: for the alert tests and the latency bench.

It needs aiosmtpd (a dev dependency), which is why it lives in the tests' support code, never in a runtime
package. Import it as `tests.support.smtp_capture` (the repo root is on pytest's pythonpath).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    """One delivered message, with its envelope and the moment it arrived."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content()


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self.capture = capture

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.capture.refuse_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.capture.refuse_with:
            return self.capture.refuse_with
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.capture.add(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message, time.monotonic()))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpCapture:
    """`with SmtpCapture() as smtp:` serves on 127.0.0.1:`smtp.port`; set `refuse_with` to refuse mail, and
    `refuse_recipients` to refuse some addresses only.

    With `login=(user, password)` it offers AUTH (over plain text: loopback only), `url` carries them, and
    `logins` lists the users that logged in.
    """

    def __init__(self, port: int | None = None, login: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.login = login
        self.logins: list[str] = []
        self.refuse_with: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.refuse_recipients: set[str] = set()  # addresses refused at RCPT TO, as for an unknown mailbox
        self._messages: list[Received] = []
        self._lock = threading.Lock()
        auth: dict[str, Any] = {"authenticator": self._authenticate, "auth_require_tls": False} if login else {}
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **auth)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        wanted = tuple(part.encode() for part in self.login or ())
        if isinstance(data, LoginPassword) and (data.login, data.password) == wanted:
            with self._lock:
                self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535

    @property
    def url(self) -> str:
        if self.login:
            user, password = (quote(part, safe="") for part in self.login)
            return f"smtp://{user}:{password}@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"

    def add(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages once at least `count` have arrived (or whatever came before the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
