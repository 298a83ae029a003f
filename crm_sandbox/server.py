"""One Starlette app serving all six CRM simulators and the control API, run by uvicorn on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from .agentos import AgentOsSimulator
from .alto import AltoSimulator
from .control_api import control_routes
from .loop import LoopSimulator
from .openapi import OpenApiSimulator
from .reapit import ReapitSimulator
from .simulator import ConnectionDropped, Simulator
from .street import StreetSimulator

SIMULATORS: tuple[type[Simulator], ...] = (
    ReapitSimulator,
    AltoSimulator,
    StreetSimulator,
    AgentOsSimulator,
    LoopSimulator,
    OpenApiSimulator,
)


def build_app() -> Starlette:
    """The app: ``/{crm}/...`` per simulator and ``/_sandbox/...`` for control. State lives in the app."""
    simulators = {cls.crm: cls() for cls in SIMULATORS}
    routes = [Mount(f"/{crm}", routes=sim.routes()) for crm, sim in simulators.items()]
    routes.append(Mount("/_sandbox", routes=control_routes(simulators)))
    app = Starlette(routes=routes)
    app.state.simulators = simulators
    return app


def base_urls(root_url: str) -> dict[str, str]:
    """The settings (env var names) that point NurtureHub's CRM clients at a sandbox at ``root_url``."""
    return {
        "REAPIT_BASE_URL": f"{root_url}/reapit",
        "REAPIT_TOKEN_URL": f"{root_url}/reapit/token",
        "ALTO_BASE_URL": f"{root_url}/alto",
        "STREET_BASE_URL": f"{root_url}/street",
        "AGENTOS_BASE_URL": f"{root_url}/agentos",
        "LOOP_BASE_URL": f"{root_url}/loop",
        "OPENAPI_BASE_URL": f"{root_url}/openapi",
    }


class _HideDroppedConnections(logging.Filter):
    """The ``reset`` fault drops connections on purpose; uvicorn need not print a traceback for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def _uvicorn(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        http="h11",
        loop="asyncio",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=1,
    )
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedConnections) for f in error_log.filters):
        error_log.addFilter(_HideDroppedConnections())
    return uvicorn.Server(config)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it every
    # response waits ~40 ms for the client's delayed ACK (headers and body are written separately).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class SandboxServer:
    """The sandbox on a background thread; ``port=0`` picks a free port. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = build_app()
        self._socket = _bind(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.root_url = f"http://{bound_host}:{bound_port}"
        self._server = _uvicorn(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="crm-sandbox", daemon=True
        )

    def base_urls(self) -> dict[str, str]:
        """Env var name -> URL for each CRM client."""
        return base_urls(self.root_url)

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving and wait until the socket accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the CRM sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(host: str = "127.0.0.1", port: int = 8900) -> None:
    """For ``nurturehub sandbox``: print the base URLs as one JSON object, then serve until interrupted."""
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = "127.0.0.1" if bound_host == "0.0.0.0" else bound_host
    print(json.dumps(base_urls(f"http://{shown_host}:{bound_port}")), flush=True)
    _uvicorn(build_app()).run(sockets=[sock])
