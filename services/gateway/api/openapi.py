"""The OpenAPI document of the gateway, served at /openapi.json (the fuzz tests generate requests
from it)."""

from __future__ import annotations

from typing import Any

_JSON = "application/json"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_NAME = {
    "name": "name",
    "in": "query",
    "required": True,
    "description": "Endpoint name: letters, digits, '.', '_' or '-'.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
}
_REQUEST_ID = {
    "name": "request_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}


def _answers(ok: str, *codes: int, status: str = "200") -> dict[str, Any]:
    text = {
        400: "invalid body or parameter",
        401: "no bearer token, or a bad webhook signature",
        403: "wrong bearer token",
        404: "unknown",
        409: "already done with other figures",
        413: "body too large",
        503: "Kafka or PostgreSQL did not answer: try again",
    }
    answers: dict[str, Any] = {
        status: {"description": ok, "content": {_JSON: {"schema": _ANY_OBJECT}}}
    }
    for c in (*codes, 503):
        answers[str(c)] = {"description": text[c], "content": {_JSON: {"schema": _ERROR_REF}}}
    return answers


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _webhook(summary: str, headers: list[str]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [
                {"name": h, "in": "header", "required": False, "schema": {"type": "string"}}
                for h in headers
            ],
            "requestBody": _body(_ANY_OBJECT),
            "responses": _answers("Kafka has the events", 400, 401, 413),
        }
    }


ENDPOINT_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "secret": {"type": "string", "description": "whsec_ + base64 of 24 to 64 bytes"},
        "locations": {"type": "array", "items": {"type": "string"}},
        "types": {
            "type": "array",
            "items": {"enum": ["replenishment.requested", "stock.level.changed"]},
            "minItems": 1,
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "stockledger gateway", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                }
            },
        },
        "paths": {
            "/v1/webhooks/shopify": _webhook(
                "A Shopify webhook",
                ["X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Webhook-Id"],
            ),
            "/v1/webhooks/woocommerce": _webhook(
                "A WooCommerce webhook", ["X-WC-Webhook-Signature", "X-WC-Webhook-Topic"]
            ),
            "/v1/events": {
                "post": {
                    "summary": "Contract events: all valid → 202, else 400 and nothing published",
                    "security": _BEARER,
                    "requestBody": _body(
                        {"oneOf": [_ANY_OBJECT, {"type": "array", "items": _ANY_OBJECT}]}
                    ),
                    "responses": _answers("published", 400, 401, 403, 413, status="202"),
                }
            },
            "/v1/webhooks/endpoints": {
                "get": {
                    "summary": "Registered receivers (one with name)",
                    "security": _BEARER,
                    "parameters": [_NAME | {"required": False}],
                    "responses": _answers("the endpoints", 400, 401, 403, 404),
                },
                "put": {
                    "summary": "Register or replace a receiver",
                    "security": _BEARER,
                    "parameters": [_NAME],
                    "requestBody": _body(ENDPOINT_BODY),
                    "responses": _answers("replaced", 400, 401, 403, 413)
                    | {"201": {"description": "registered"}},
                },
                "delete": {
                    "summary": "Remove a receiver",
                    "security": _BEARER,
                    "parameters": [_NAME],
                    "responses": _answers("removed", 400, 401, 403, 404),
                },
            },
            "/v1/webhooks/deliveries": {
                "get": {
                    "summary": "Deliveries and their attempts",
                    "security": _BEARER,
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"enum": ["pending", "delivered", "failed"]},
                        },
                        _NAME | {"required": False},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "after", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": _answers("deliveries", 400, 401, 403),
                }
            },
            "/v1/replenishment/requests/{request_id}/confirm": {
                "post": {
                    "summary": "Confirm a replenishment request",
                    "security": _BEARER,
                    "parameters": [_REQUEST_ID],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["qty"],
                            "properties": {
                                "qty": {"type": "integer", "minimum": 1},
                                "expected_at": {"type": "string", "format": "date-time"},
                            },
                        }
                    ),
                    "responses": _answers("published", 400, 401, 403, 404, 409, status="202"),
                }
            },
            "/v1/replenishment/requests/{request_id}/cancel": {
                "post": {
                    "summary": "Cancel a replenishment request",
                    "security": _BEARER,
                    "parameters": [_REQUEST_ID],
                    "responses": _answers("published", 400, 401, 403, status="202"),
                }
            },
        },
    }
