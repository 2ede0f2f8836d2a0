"""The OpenAPI document of the HTTP API, built from the same models the API answers with.

The committed copy is docs/openapi.json (``python -m shared.contract_docs`` writes it, a test
checks it); the running API serves it at /openapi.json.
"""

from __future__ import annotations

from typing import Any

from shared.events.ledger import LedgerEntryMessage
from shared.events.outputs import StockLevelMessage

Operation = dict[str, Any]
_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _param(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1, "maxLength": 64},
    }


def _ok(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "a parameter is missing or malformed",
        401: "no or wrong bearer token",
        403: "the token may not do this",
        404: "never seen",
        503: "not ready",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


SKU = _param("sku", "Stock keeping unit (case-sensitive).", required=True)
LOCATION = _param("location", "Location code (case-sensitive).")
LIMIT = _param("limit", "Page size.", type="integer", minimum=1, maximum=1000, default=100)


def _stock_paths() -> dict[str, Any]:
    return {
        "/v1/stock": {
            "get": {
                "summary": "Stock of a sku: every location and a total, or one location, "
                "or one location as it stood at an event time",
                "operationId": "getStock",
                "parameters": [
                    SKU,
                    LOCATION,
                    _param(
                        "as_of",
                        "RFC 3339 time with offset; needs location.",
                        type="string",
                        format="date-time",
                    ),
                ],
                "responses": {"200": _ok("The level(s).", "StockAnswer"), **_errors(400, 404)},
            }
        },
        "/v1/stock/ledger": {
            "get": {
                "summary": "The audit trail of one item: ledger entries after a position",
                "operationId": "getLedger",
                "parameters": [
                    SKU,
                    {**LOCATION, "required": True},
                    LIMIT,
                    _param(
                        "after", "Position to start after.", type="integer", minimum=0, default=0
                    ),
                ],
                "responses": {"200": _ok("A page of entries.", "LedgerPage"), **_errors(400)},
            }
        },
        "/v1/locations/stock": {
            "get": {
                "summary": "Levels at a location, filterable, paginated by sku",
                "operationId": "getLocationStock",
                "parameters": [
                    {**LOCATION, "required": True},
                    _param("oversold", "Only items with available < 0.", type="boolean"),
                    _param(
                        "below_reorder_point",
                        "Only items at or below their reorder point.",
                        type="boolean",
                    ),
                    LIMIT,
                    _param("after", "The sku to start after."),
                ],
                "responses": {"200": _ok("A page of levels.", "LocationPage"), **_errors(400)},
            }
        },
    }


def _health_paths() -> dict[str, Any]:
    plain = {"200": {"description": "OK"}}
    return {
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "responses": plain}},
        "/readyz": {
            "get": {
                "summary": "Readiness: Kafka and PostgreSQL reachable, consumers assigned",
                "operationId": "readyz",
                "responses": {**plain, **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {"description": "Prometheus text format", "content": {"text/plain": {}}}
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "operationId": "openapi", "responses": plain}
        },
    }


def _schemas() -> dict[str, Any]:
    level = StockLevelMessage.model_json_schema(ref_template="#/components/schemas/{model}")
    entry = LedgerEntryMessage.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = {**level.pop("$defs", {}), **entry.pop("$defs", {})}
    total = {
        "type": "object",
        "description": "Sums over every location.",
        "properties": {
            s: {"type": "integer"}
            for s in ("on_hand", "committed", "damaged", "quality_control", "incoming", "available")
        },
    }
    return {
        **defs,
        "Error": _ERROR,
        "StockLevel": level,
        "LedgerEntry": entry,
        "StockAnswer": {
            "oneOf": [
                {"$ref": "#/components/schemas/StockLevel"},
                {
                    "type": "object",
                    "description": "Every location of the sku and their total.",
                    "required": ["sku", "locations", "total"],
                    "properties": {
                        "sku": {"type": "string"},
                        "locations": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/StockLevel"},
                        },
                        "total": total,
                    },
                },
            ]
        },
        "LedgerPage": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "location": {"type": "string"},
                "entries": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEntry"}},
                "next_after": {"type": ["integer", "null"]},
            },
        },
        "LocationPage": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/StockLevel"}},
                "next_after": {"type": ["string", "null"]},
            },
        },
    }


def openapi_document(
    extra_paths: dict[str, Any] | None = None, extra_schemas: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stockledger API",
            "version": "1.0.0",
            "description": "Stock per location in real time, its history, and stock as of any "
            "time. SKUs and locations travel as query parameters. Errors are "
            '{"error": code, "detail": text}.',
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {**_stock_paths(), **(extra_paths or {}), **_health_paths()},
        "components": {
            "schemas": {**_schemas(), **(extra_schemas or {})},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _replenishment_paths() -> dict[str, Any]:
    location = {**LOCATION, "required": True}
    return {
        "/v1/policies": {
            "get": {
                "summary": "The replenishment policy in force for an item and the figures "
                "behind it (forecast, safety stock, reorder point, order-up-to)",
                "operationId": "getPolicy",
                "parameters": [SKU, location],
                "responses": {
                    "200": _ok("The policy and figures.", "PolicyAnswer"),
                    **_errors(400),
                },
            },
            "put": {
                "summary": "Set an item's replenishment policy",
                "operationId": "putPolicy",
                "security": [{"bearer": []}],
                "parameters": [SKU, location],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Policy"}}
                    },
                },
                "responses": {
                    "200": _ok("The policy stored.", "PolicyAnswer"),
                    **_errors(400, 401, 403),
                },
            },
        },
        "/v1/replenishment/requests": {
            "get": {
                "summary": "Replenishment requests and their state, newest first",
                "operationId": "getRequests",
                "parameters": [
                    _param(
                        "status",
                        "open (open or confirmed) or closed (received or cancelled).",
                        type="string",
                        enum=["open", "closed"],
                    ),
                    _param("sku", "Only this sku."),
                    LOCATION,
                    LIMIT,
                ],
                "responses": {"200": _ok("Requests.", "RequestList"), **_errors(400)},
            }
        },
    }


def _replenishment_schemas() -> dict[str, Any]:
    from services.replenisher.policy import Policy

    policy = Policy.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "Policy": policy,
        "PolicyAnswer": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "location": {"type": "string"},
                "source": {"type": "string", "enum": ["set", "default"]},
                "policy": {"$ref": "#/components/schemas/Policy"},
                "forecast": {
                    "type": ["object", "null"],
                    "description": "normal: the demand forecast (method, daily demand, spread).",
                },
                "plan": {
                    "type": ["object", "null"],
                    "description": "lines: reorder point and order-up-to in units, the item's"
                    " expected line fill, lines per day, mean line size, lead-time demand"
                    " quantiles (p50, p90, p99), the event-time day planned for, and the price"
                    " of stock (lines served per unit held) set over all items.",
                },
                "figures": {
                    "type": ["object", "null"],
                    "description": "What the policy in force decides by: reorder point and"
                    " order-up-to (whole units), safety stock, daily demand; for lines also the"
                    " expected line fill and the lead-time demand quantiles.",
                },
            },
        },
        "RequestList": {
            "type": "object",
            "properties": {
                "requests": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "request_id": {"type": "string"},
                            "sku": {"type": "string"},
                            "location": {"type": "string"},
                            "qty": {"type": "integer"},
                            "kind": {"type": "string", "enum": ["purchase", "transfer"]},
                            "from_location": {"type": ["string", "null"]},
                            "status": {
                                "type": "string",
                                "enum": ["open", "confirmed", "received", "cancelled"],
                            },
                            "confirmed_qty": {"type": "integer"},
                            "received_qty": {"type": "integer"},
                            "needed_by": {"type": "string", "format": "date-time"},
                            "requested_at": {"type": "string", "format": "date-time"},
                            "reason": {"type": "object"},
                            "published": {"type": "boolean"},
                        },
                    },
                }
            },
        },
    }


def full_document() -> dict[str, Any]:
    """The document of everything the API serves: stock and replenishment."""
    return openapi_document(_replenishment_paths(), _replenishment_schemas())
