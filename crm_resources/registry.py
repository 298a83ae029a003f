"""The CRM registry: one line per CRM. Jobs, the CLI and the page all read it.

A seventh CRM is one module (a `CrmSpec` and a `CrmResource`) and one entry in `CRM_RESOURCES`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import EnvVar

from crm_resources.agentos import AgentOsResource
from crm_resources.alto import AltoResource
from crm_resources.core import CrmResource
from crm_resources.loop import LoopResource
from crm_resources.openapi import OpenApiResource
from crm_resources.reapit import ReapitResource
from crm_resources.street import StreetResource

CRM_RESOURCES: tuple[type[CrmResource], ...] = (
    AgentOsResource,
    ReapitResource,
    AltoResource,
    StreetResource,
    LoopResource,
    OpenApiResource,
)

REGISTRY: dict[str, type[CrmResource]] = {cls.spec.crm: cls for cls in CRM_RESOURCES}
CRMS: tuple[str, ...] = tuple(REGISTRY)


class IntegrationConfigError(ValueError):
    """Settings or credentials that don't fit the CRM; the message lists the right ones."""


def crm_name(crm: str) -> str:
    return REGISTRY[crm].spec.crm_name if crm in REGISTRY else crm


def resource_from_env(crm: str, **tuning: Any) -> CrmResource:
    """The CRM's resource, each URL or app credential from `{CRM}_{FIELD}` when that is set.

    `EnvVar` keeps the values out of run config and the Dagster UI; unset ones keep the
    vendor's production defaults declared on the resource. `tuning` overrides engine settings.
    """
    cls = REGISTRY[crm]
    tunable = set(CrmResource.model_fields)
    values: dict[str, Any] = {}
    for name in cls.model_fields:
        env = f"{crm.upper()}_{name.upper()}"
        if name not in tunable and os.environ.get(env):
            values[name] = EnvVar(env)
    return cls(**values, **tuning)


def check_integration(crm: str, settings: Mapping[str, str], credentials: Mapping[str, str]) -> None:
    """Refuse a missing or unknown setting or credential, naming the accepted ones."""
    check_settings(crm, settings)
    check_credentials(crm, credentials)


def check_settings(crm: str, settings: Mapping[str, str]) -> None:
    """The CRM's settings, exactly: each missing or unknown name refused, the accepted ones listed."""
    cls = _crm_class(crm)
    wanted = set(cls.settings_keys)
    if set(settings) != wanted:
        accepted = ", ".join(cls.settings_keys) or "none"
        problems = [f"missing setting {k!r}" for k in sorted(wanted - set(settings))]
        problems += [f"unknown setting {k!r}" for k in sorted(set(settings) - wanted)]
        raise IntegrationConfigError(f"{'; '.join(problems)}: {crm} takes settings: {accepted}")
    _check_not_empty(settings)


def check_credentials(crm: str, credentials: Mapping[str, str]) -> None:
    """One whole accepted set of credential names (values are never echoed)."""
    cls = _crm_class(crm)
    if set(credentials) not in [set(s) for s in cls.credential_sets]:
        options = " or ".join(" and ".join(s) if s else "none" for s in cls.credential_sets)
        given = ", ".join(sorted(credentials)) or "none"
        raise IntegrationConfigError(f"{crm} takes credentials: {options} (given: {given})")
    _check_not_empty(credentials)


def _crm_class(crm: str) -> type[CrmResource]:
    if crm not in REGISTRY:
        raise IntegrationConfigError(f"unknown CRM {crm!r}: use one of {', '.join(CRMS)}")
    return REGISTRY[crm]


def _check_not_empty(values: Mapping[str, str]) -> None:
    empty = [k for k, v in values.items() if not v]
    if empty:
        raise IntegrationConfigError(f"empty value for {', '.join(empty)}")
