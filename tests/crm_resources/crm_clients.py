"""The six CRM clients against the sandbox: their resources pointed at it, and what crm-apis.md says each
CRM's records look like, as data the per-CRM tests (test_<crm>.py) and the shared contract check."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from crm_resources.core import CrmClient, CrmResource
from crm_resources.registry import REGISTRY
from crm_sandbox.credentials import SANDBOX_CREDENTIALS
from crm_sandbox.server import SandboxServer
from nurturehub_pipelines.store import accounts, db
from nurturehub_pipelines.sync.engine import StepResult, SyncSession

# Real retries and backoff, scaled down so a fault costs milliseconds.
FAST: dict[str, Any] = {
    "timeout_seconds": 2.0,
    "max_attempts": 3,
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "default_retry_after_seconds": 0.05,
}
CONTACTS, LEADS = 47, 31  # odd sizes: both endpoints of a split stream end on a short page
PAGE = 10

# crm-apis.md, as data: the id prefixes of each stream, and the lead kind each prefix implies.
PREFIXES: dict[str, tuple[set[str], set[str]]] = {
    "agentos": ({"landlord:", "tenant:"}, {"lettings:", "sales:"}),
    "street": ({""}, {"sales:", "lettings:"}),
    "loop": ({""}, {"buyer:", "renter:"}),
    "reapit": ({""}, {""}),
    "alto": ({""}, {""}),
    "openapi": ({""}, {""}),
}
PREFIX_KINDS = {"lettings:": "lettings", "sales:": "sales", "buyer:": "sales", "renter:": "lettings"}


def _primary(entries: Any) -> Any:
    if not entries:
        return None
    return next((e for e in entries if e.get("primary") is True), entries[0]).get("value")


def _first(raw: Mapping[str, Any], *keys: str) -> Any:
    return next((raw[k] for k in keys if raw.get(k)), None)


def _alto_person(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return (raw.get("contactInformation") or [{}])[0]


# The primary email and phone, as crm-apis.md says each CRM gives them.
PRIMARY: dict[str, Any] = {
    "reapit": lambda raw: (raw.get("email"), _first(raw, "mobilePhone", "homePhone", "workPhone")),
    "alto": lambda raw: (_alto_person(raw).get("emailAddress"), _alto_person(raw).get("phoneNumber")),
    "agentos": lambda raw: (raw.get("EmailAddress"), _first(raw, "MobilePhone", "HomePhone", "WorkPhone")),
    "loop": lambda raw: (raw.get("email"), raw.get("phone")),
    "street": lambda raw: (
        _primary(raw["attributes"].get("email_addresses")),
        _primary(raw["attributes"].get("telephone_numbers")),
    ),
    "openapi": lambda raw: (_primary(raw.get("emails")), _primary(raw.get("phones"))),
}
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def resource(crm: str, sandbox: SandboxServer, **tuning: Any) -> CrmResource:
    """The CRM's resource pointed at the sandbox, with NurtureHub's app credentials where it has them."""
    cls = REGISTRY[crm]
    urls = sandbox.base_urls()
    values: dict[str, Any] = {}
    if "base_url" in cls.model_fields:
        values["base_url"] = urls[f"{crm.upper()}_BASE_URL"]
    if "token_url" in cls.model_fields:
        values["token_url"] = urls[f"{crm.upper()}_TOKEN_URL"]
    for key in ("client_id", "client_secret"):
        if key in cls.model_fields:
            values[key] = SANDBOX_CREDENTIALS[crm][key]
    return cls(**{**values, **FAST, **tuning})


def connection_values(crm: str, sandbox: SandboxServer) -> tuple[dict[str, str], dict[str, str]]:
    cls = REGISTRY[crm]
    given = {**SANDBOX_CREDENTIALS[crm], "base_url": sandbox.base_urls()["OPENAPI_BASE_URL"]}
    return {k: given[k] for k in cls.settings_keys}, {k: given[k] for k in cls.credential_sets[0]}


def client(
    crm: str,
    sandbox: SandboxServer,
    *,
    settings: dict[str, str] | None = None,
    credentials: dict[str, str] | None = None,
    **tuning: Any,
) -> CrmClient:
    default_settings, default_credentials = connection_values(crm, sandbox)
    return resource(crm, sandbox, **tuning).client(
        {**default_settings, **(settings or {})}, {**default_credentials, **(credentials or {})}
    )


def read_all(c: CrmClient, stream: str) -> list[Any]:
    mapper = c.spec.map_contact if stream == "contacts" else c.spec.map_lead
    return [mapper(raw, page.endpoint) for page in c.pages(stream, None) for raw in page.records]


def prefix_of(external_id: str) -> str:
    return external_id.split(":", 1)[0] + ":" if ":" in external_id else ""


def oauth_app(crm: str) -> bool:
    """Reapit and Alto authenticate with NurtureHub's own app credentials (a token request)."""
    return "client_id" in REGISTRY[crm].model_fields


def integration(db_url: str, crm: str, sandbox: SandboxServer) -> accounts.Integration:
    settings, credentials = connection_values(crm, sandbox)
    with db.engine(db_url).begin() as conn:
        org = accounts.create_org(conn, "Harbour Lettings", "owner@harbour.example")
        integration_id = accounts.add_integration(conn, org["org_id"], crm, crm, settings, credentials)
        found = accounts.get_integration(conn, integration_id)
    assert found is not None
    return found


def sync(db_url: str, found: accounts.Integration, c: CrmClient, *, full: bool) -> dict[str, StepResult]:
    session = SyncSession(db.engine(db_url), found, c, run_id=None, trigger="manual", full=full)
    steps = [session.auth_refresh(), session.import_stream("contacts"), session.import_stream("leads")]
    steps.append(session.finish(steps))
    return {s.event_type: s for s in steps}


def count(db_url: str, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with db.engine(db_url).connect() as conn:
        return int(conn.execute(query).scalar_one())
