"""Fixtures of the alert package's tests: an organisation, a real SMTP server on loopback, the alert loop."""

from tests.support.alert_fixtures import loop, org, smtp

__all__ = ["loop", "org", "smtp"]
