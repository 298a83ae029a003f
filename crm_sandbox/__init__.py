"""Simulators of the six CRM APIs (crm-apis.md) with fault injection, on one loopback HTTP server."""

from .control import SandboxControl
from .credentials import SANDBOX_CREDENTIALS
from .server import SandboxServer, base_urls, build_app, serve_forever

__all__ = ["SANDBOX_CREDENTIALS", "SandboxControl", "SandboxServer", "base_urls", "build_app", "serve_forever"]
