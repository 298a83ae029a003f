"""The integrations page and its JSON API (Starlette)."""
