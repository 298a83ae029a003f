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
            "last_synced_at": {
                **_TIME,
                "nullable": True,
                "description": "newest sync_finished row with outcome success or warning",
            },
            "health": {"type": "string", "enum": ["green", "amber", "red", "pending"]},
            "health_reason": {"type": "string", "nullable": True, "description": "why, in words"},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "sync_in_progress": {"type": "boolean"},
            "next_sync_at": {**_TIME, "nullable": True, "description": "the schedule's next tick"},
            "recent_errors": {"type": "array", "maxItems": 5, "items": _ref("RecentError")},
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
            "description": "Health, sync log, Sync Now and Retry for an organisation's CRM integrations. "
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
