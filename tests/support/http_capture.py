"""A real HTTP server on loopback that records every request it gets and answers from a function.

For the next-link tests: one serves a made-up CRM page whose next link points at another one, the capture,
which must receive nothing (crm-apis.md, "Always page to the end": no credential is ever sent elsewhere).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: method, path, query and every header."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


# (request) -> (status, JSON body); the default answers every request with an empty JSON object.
Answer = Callable[[Seen], tuple[int, Any]]


class HttpCapture:
    """`with HttpCapture(answer) as server:` — `server.url` is its origin, `server.requests` what it got."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda seen: (200, {}))
        self.requests: list[Seen] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._handle()

            def do_POST(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items()))
                capture.requests.append(seen)
                status, body = capture.answer(seen)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
