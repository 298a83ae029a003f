"""Changing an integration from the web: a PATCH body or the page's forms, refused field by field.

The rules live in store/integration_changes (and the registry's checks it calls). This module turns what
came over HTTP into an IntegrationChange, applies it, and says which field a refusal is about (the 422
names it). Each field is applied in turn in one transaction, so a refusal of any rolls all of them back:
nothing is written. A credential value is never put into a message: the registry's messages name the
credentials, never their values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, select

from crm_resources.registry import REGISTRY, IntegrationConfigError
from nurturehub_pipelines.store.accounts import AccountError
from nurturehub_pipelines.store.integration_changes import IntegrationChange, apply_change
from nurturehub_pipelines.store.tables import integrations

PATCH_FIELDS = ("name", "enabled", "settings", "credentials")

SETTING, CREDENTIAL = "setting.", "credential."  # the reconnect form's field prefixes
LABELS = {
    "api_token": "API token",
    "api_key": "API key",
    "token": "Access token",
    "client_id": "Client ID",
    "client_secret": "Client secret",
    "short_name": "Short name",
    "base_url": "API base URL",
    "customer_id": "Customer ID",
    "agency_ref": "Agency reference",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ChangeRefused(Exception):
    """A change that was not written, with each field's reason."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    @property
    def reasons(self) -> str:
        """The reasons alone, for a person looking at a form rather than at field names."""
        return "; ".join(e.message for e in self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "detail": str(self),
            "field": self.errors[0].field,
            "errors": [{"field": e.field, "message": e.message} for e in self.errors],
        }


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _shown(key: str) -> str:
    """A name as an answer may repeat it: only one that looks like a field name, never a pasted value."""
    return key if _FIELD_NAME.fullmatch(key) else "(a name that is not a field name: not repeated)"


def _strings(value: object, what: str) -> tuple[Mapping[str, str] | None, FieldError | None]:
    """An object whose values are all strings (its names are checked against the CRM by the registry)."""
    if not isinstance(value, dict):
        return None, FieldError(what, f"{what} must be an object of names to strings")
    wrong = sorted(_shown(k) for k, v in value.items() if not isinstance(v, str))
    if wrong:
        return None, FieldError(what, f"the value of {', '.join(wrong)} must be a string")
    return value, None


def parse_patch(body: bytes) -> IntegrationChange:
    """A PATCH body as a change; a body that is not one is refused whole, naming each wrong field."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ChangeRefused([FieldError("body", "the body must be a JSON object")]) from None
    if not isinstance(data, dict):
        raise ChangeRefused([FieldError("body", "the body must be a JSON object")])
    accepted = ", ".join(PATCH_FIELDS)
    errors = [FieldError(_shown(k), f"unknown field; a change takes {accepted}") for k in data if k not in PATCH_FIELDS]
    change = IntegrationChange()
    if "name" in data:
        if isinstance(data["name"], str):
            change = replace(change, name=data["name"])
        else:
            errors.append(FieldError("name", "name must be a string"))
    if "enabled" in data:
        if isinstance(data["enabled"], bool):
            change = replace(change, enabled=data["enabled"])
        else:
            errors.append(FieldError("enabled", "enabled must be true or false"))
    if "settings" in data:
        settings, error = _strings(data["settings"], "settings")
        errors += [error] if error else []
        change = replace(change, settings=settings)
    if "credentials" in data:
        credentials, error = _strings(data["credentials"], "credentials")
        errors += [error] if error else []
        change = replace(change, credentials=credentials)
    if errors:
        raise ChangeRefused(errors)
    return change


def apply(engine: Engine, integration_id: int, change: IntegrationChange, actor: str) -> None:
    """Write the change, or nothing: a refused field rolls back the fields applied before it."""
    errors: list[FieldError] = []
    with engine.begin() as conn:
        for what in PATCH_FIELDS:
            value = getattr(change, what)
            if value is None:
                continue
            try:
                apply_change(conn, integration_id, IntegrationChange(**{what: value}), actor)
            except (AccountError, IntegrationConfigError) as exc:
                errors.append(FieldError(what, str(exc)))
        if errors:
            raise ChangeRefused(errors)  # leaving the block with an exception rolls the transaction back


@dataclass(frozen=True)
class FormField:
    """One input of a reconnect form: a setting (shown, prefilled) or a credential (a password input)."""

    name: str  # the input's name: a prefix and the setting or credential name
    key: str
    label: str
    secret: bool
    value: str = ""


def reconnectable(crm: str) -> bool:
    """CRMs with per-integration credentials (Reapit and Alto use NurtureHub's own, from the environment)."""
    return crm in REGISTRY and any(names for names in REGISTRY[crm].credential_sets)


def form_fields(crm: str, settings: Mapping[str, str]) -> list[FormField]:
    """The reconnect form of a CRM, from the registry: its settings, then every credential it may take."""
    cls = REGISTRY[crm]
    fields = [FormField(SETTING + k, k, LABELS.get(k, k), False, settings.get(k, "")) for k in cls.settings_keys]
    credentials = dict.fromkeys(name for names in cls.credential_sets for name in names)
    return fields + [FormField(CREDENTIAL + k, k, LABELS.get(k, k), True) for k in credentials]


def credential_choices(crm: str) -> str:
    """What to type, in words: "API key", or "Access token, or Client ID and Client secret"."""
    sets = [" and ".join(LABELS.get(n, n) for n in names) for names in REGISTRY[crm].credential_sets if names]
    return ", or ".join(sets)


def stored_settings(conn: Connection, org_id: int) -> dict[int, dict[str, str]]:
    """Each integration's settings (never its credentials), to prefill the reconnect forms."""
    rows = conn.execute(select(integrations.c.id, integrations.c.settings).where(integrations.c.org_id == org_id))
    return {row.id: dict(row.settings or {}) for row in rows}


def reconnect_change(crm: str, current: Mapping[str, str], form: Mapping[str, str]) -> IntegrationChange:
    """The reconnect form as a change: settings that differ from the stored ones, and the typed credentials.

    A blank credential input is not a credential (spaces around a pasted one are dropped); blank everywhere is
    refused, as there is nothing to change.
    """
    fields = form_fields(crm, current)
    settings = {
        f.key: form[f.name].strip()
        for f in fields
        if not f.secret and f.name in form and form[f.name].strip() != current.get(f.key, "")
    }
    credentials = {f.key: form[f.name].strip() for f in fields if f.secret and form.get(f.name, "").strip()}
    if not settings and not credentials:
        raise ChangeRefused([FieldError("credentials", f"type the new {credential_choices(crm)} to reconnect")])
    return IntegrationChange(settings=settings or None, credentials=credentials or None)
