"""The sandbox's control API (``/_sandbox``, JSON, no auth): datasets, mutations, faults, limits, log."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .faults import Fault, FaultError
from .simulator import Simulator
from .state import STREAM_NAMES, StreamName

ControlHandler = Callable[[Simulator, dict[str, Any]], Any]


class ControlError(ValueError):
    """A control request the sandbox refuses (400)."""


def _count(body: dict[str, Any], name: str, *, default: int | None = 0) -> int | None:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError(f"{name} must be an integer >= 0")
    return value


def _counts(body: dict[str, Any]) -> dict[StreamName, int]:
    return {name: _count(body, name) or 0 for name in STREAM_NAMES}


def dataset(sim: Simulator, body: dict[str, Any]) -> dict[str, int]:
    """Resize/reseed; omitted fields keep their value. Mutations are forgotten, old cursors expire."""
    current = sim.state.dataset_json()
    values = {name: _count(body, name, default=value) for name, value in current.items()}
    sim.state.configure(**{name: int(value or 0) for name, value in values.items()})
    return sim.state.dataset_json()


def _mutate(sim: Simulator, body: dict[str, Any], *, delete: bool) -> dict[str, list[str]]:
    slots = sim.state.mutate(_counts(body), delete=delete)
    return {stream: sim.external_ids(stream, chosen) for stream, chosen in slots.items()}


def add_fault(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    """Queue a fault behind the others."""
    try:
        fault = Fault.parse(body)
    except FaultError as exc:
        raise ControlError(str(exc)) from None
    sim.state.faults.add(fault)
    return fault.to_json()


def rate_limit(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    """``{"requests": n | null, "per_seconds": s}``; null turns limiting off."""
    requests = _count(body, "requests", default=None)
    per_seconds = body.get("per_seconds", 1.0)
    if not isinstance(per_seconds, int | float) or per_seconds <= 0:
        raise ControlError("per_seconds must be a number > 0")
    sim.state.set_rate_limit(requests, float(per_seconds))
    return {"requests": requests, "per_seconds": float(per_seconds)}


def token_ttl(sim: Simulator, body: dict[str, Any]) -> dict[str, int]:
    """Lifetime of tokens issued from now on."""
    seconds = _count(body, "seconds", default=None)
    if not seconds:
        raise ControlError("seconds must be an integer > 0")
    sim.state.tokens.ttl = seconds
    return {"seconds": seconds}


def _ok(action: Callable[[], None]) -> dict[str, bool]:
    """Run a state change that answers nothing, and say it happened."""
    action()
    return {"ok": True}


_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("POST", "dataset", dataset),
    ("GET", "dataset", lambda sim, _: sim.state.dataset_json()),
    ("POST", "touch", lambda sim, body: _mutate(sim, body, delete=False)),
    ("POST", "delete", lambda sim, body: _mutate(sim, body, delete=True)),
    ("POST", "faults", add_fault),
    ("GET", "faults", lambda sim, _: {"faults": [f.to_json() for f in sim.state.faults.pending()]}),
    ("DELETE", "faults", lambda sim, _: _ok(sim.state.faults.clear)),
    ("GET", "requests", lambda sim, _: {"requests": list(sim.state.requests)}),
    ("DELETE", "requests", lambda sim, _: _ok(sim.state.requests.clear)),
    ("POST", "rate_limit", rate_limit),
    ("POST", "expire_tokens", lambda sim, _: _ok(sim.state.tokens.expire_all)),
    ("POST", "token_ttl", token_ttl),
]


def control_routes(simulators: Mapping[str, Simulator]) -> list[BaseRoute]:
    """Routes to mount at ``/_sandbox``."""

    def endpoint(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            sim = simulators.get(request.path_params["crm"])
            if sim is None:
                return JSONResponse({"error": f"unknown crm; one of {sorted(simulators)}"}, status_code=404)
            try:
                raw = await request.body()
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ControlError("the body must be a JSON object")
                return JSONResponse(handler(sim, body))
            except (ControlError, json.JSONDecodeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return run

    async def reset(_: Request) -> Response:
        for sim in simulators.values():
            sim.state.reset()
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = [Route("/reset", reset, methods=["POST"])]
    routes += [Route(f"/{{crm}}/{name}", endpoint(handler), methods=[method]) for method, name, handler in _ROUTES]
    return routes
