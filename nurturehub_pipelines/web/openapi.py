"""The OpenAPI description of the JSON routes, written by hand so it says exactly what DESIGN.md promises."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TIME = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_ACCESS = {
    "401": _error("No valid credentials", {"WWW-Authenticate": {"schema": {"type": "string"}}}),
    "403": _error("A member (only the owner and admins may use this), or a missing CSRF token"),
}
_NOT_FOUND = {"404": _error("No such integration in the caller's organisation")}
_SYNC_ANSWERS = {
    "202": _json(
        "Accepted: a sync request was recorded and a run starts within seconds",
        {
            "type": "object",
            "required": ["request_id"],
            "properties": {"request_id": {"type": "string", "description": "opaque"}},
        },
    ),
    **_ACCESS,
    **_NOT_FOUND,
    "409": _error("A sync of this integration is already requested, queued or running"),
    "429": _error(
        "The CRM's rate-limit window is known to be closed; the refusal is logged as sync_requested/error",
        {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    ),
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
    "RecentError": {
        "type": "object",
        "required": ["log_id", "occurred_at", "event_type", "message"],
        "properties": {
            "log_id": {"type": "integer"},
            "occurred_at": _TIME,
            "event_type": {"type": "string", "enum": ["sync_finished", "sync_requested"]},
            "message": {"type": "string"},
        },
    },
    "Card": {
        "type": "object",
        "required": [
            "id",
            "crm",
            "crm_name",
            "name",
            "enabled",
            "paused_reason",
            "last_synced_at",
            "health",
            "health_reason",
            "consecutive_failures",
            "sync_in_progress",
            "next_sync_at",
            "recent_errors",
        ],
        "properties": {
            "id": {"type": "integer"},
            "crm": {"type": "string", "enum": ["agentos", "reapit", "alto", "street", "loop", "openapi"]},
            "crm_name": {"type": "string", "description": "agentOS, Reapit, Alto, Street, Loop or Open API"},
            "name": {"type": "string", "description": "display name; defaults to crm_name"},
            "enabled": {"type": "boolean", "description": "false while a person has paused its scheduled syncs"},
            "paused_reason": {
                "type": "string",
                "nullable": True,
                "description": "null while scheduled syncs run, else why they don't, in words: "
                '"Paused by admin@agency.example", or "Waiting for new Street credentials: Street rejected '
                'the last ones"',
            },
            "last_synced_at": {
                **_TIME,
                "nullable": True,
                "description": "newest sync_finished row with outcome success or warning",
            },
            "health": {"type": "string", "enum": ["green", "amber", "red", "pending"]},
            "health_reason": {"type": "string", "nullable": True, "description": "why, in words"},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "sync_in_progress": {"type": "boolean"},
            "next_sync_at": {
                **_TIME,
                "nullable": True,
                "description": "the schedule's next tick; null while scheduled syncs are paused or on hold",
            },
            "recent_errors": {"type": "array", "maxItems": 5, "items": _ref("RecentError")},
        },
    },
    "IntegrationChange": {
        "type": "object",
        "additionalProperties": False,
        "description": "Any of these fields; those left out stay as they are. Nothing is written unless all "
        "of them are accepted.",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "description": "no control characters"},
            "enabled": {"type": "boolean", "description": "false pauses its scheduled syncs, true resumes them"},
            "settings": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "the CRM's settings by name (customer_id, agency_ref, short_name, base_url); "
                "those given replace those names",
            },
            "credentials": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "the whole new set, as for `integration add` (api_token; api_key; token, or "
                "client_id and client_secret; none for Reapit and Alto); never shown again",
            },
        },
    },
    "ChangeRefused": {
        "type": "object",
        "required": ["detail", "field", "errors"],
        "properties": {
            "detail": {"type": "string", "description": "each refused field and why, in words"},
            "field": {"type": "string", "description": "the first refused field (body when it is not JSON)"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "LogEvent": {
        "type": "object",
        "required": [
            "id",
            "occurred_at",
            "event_type",
            "records_affected",
            "records_skipped",
            "outcome",
            "message",
            "run_id",
            "trigger",
        ],
        "properties": {
            "id": {"type": "integer"},
            "occurred_at": _TIME,
            "event_type": {
                "type": "string",
                "enum": ["auth_refresh", "contact_import", "lead_update", "sync_finished", "sync_requested"],
            },
            "records_affected": {"type": "integer", "minimum": 0},
            "records_skipped": {"type": "integer", "minimum": 0},
            "outcome": {"type": "string", "enum": ["success", "warning", "error"]},
            "message": {"type": "string"},
            "run_id": {"type": "string", "nullable": True},
            "trigger": {"type": "string", "enum": ["schedule", "sync_now", "retry", "manual"]},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "NurtureHub integrations API",
            "version": "1.0.0",
            "description": "Health, sync log, Sync Now, Retry and changes for an organisation's CRM integrations. "
            "Owners and admins only.",
        },
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/api/integrations": {
                "get": {
                    "summary": "The caller's organisation's integrations, as cards",
                    "operationId": "listIntegrations",
                    "responses": {
                        "200": _json(
                            "The cards",
                            {
                                "type": "object",
                                "required": ["integrations"],
                                "properties": {"integrations": {"type": "array", "items": _ref("Card")}},
                            },
                        ),
                        **_ACCESS,
                    },
                }
            },
            "/api/integrations/{id}": {
                "patch": {
                    "summary": "Change an integration: rename, pause or resume, new settings or credentials",
                    "description": "A change of settings or credentials also lifts the rejected-credentials "
                    "hold on its scheduled syncs. Cookie sessions send their CSRF token as X-CSRF-Token.",
                    "operationId": "changeIntegration",
                    "parameters": [_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("IntegrationChange")}},
                    },
                    "responses": {
                        "200": _json("Changed: the integration's card", _ref("Card")),
                        **_ACCESS,
                        **_NOT_FOUND,
                        "413": _error("The body is larger than 64 KiB"),
                        "422": _json(
                            "Not changed, nothing written: an unknown field, a wrong type, an invalid name, "
                            "settings or credential set",
                            _ref("ChangeRefused"),
                        ),
                    },
                }
            },
            "/api/integrations/{id}/log": {
                "get": {
                    "summary": "The newest log events of one integration, newest first",
                    "operationId": "integrationLog",
                    "parameters": [
                        _ID,
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "1 or more; defaults to 100; above 100 is clamped to 100",
                            "schema": {"type": "integer", "minimum": 1, "default": 100},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            "The events",
                            {
                                "type": "object",
                                "required": ["events"],
                                "properties": {"events": {"type": "array", "maxItems": 100, "items": _ref("LogEvent")}},
                            },
                        ),
                        **_ACCESS,
                        **_NOT_FOUND,
                        "422": _error("limit is not an integer, or is below 1"),
                    },
                }
            },
            "/api/integrations/{id}/sync": {
                "post": {
                    "summary": "Sync Now: a full sync of one integration",
                    "operationId": "syncNow",
                    "parameters": [_ID],
                    "responses": _SYNC_ANSWERS,
                }
            },
            "/api/integrations/{id}/errors/{log_id}/retry": {
                "post": {
                    "summary": "Retry: as Sync Now, with trigger retry, from one error row",
                    "operationId": "retryError",
                    "parameters": [
                        _ID,
                        {"name": "log_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        **_SYNC_ANSWERS,
                        "404": _error("No such integration, or log_id is not an error row of it"),
                    },
                }
            },
        },
    }
