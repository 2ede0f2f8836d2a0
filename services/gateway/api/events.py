"""POST /v1/events (contract events over HTTP) and the replenishment confirm and cancel
endpoints. Every event is validated by the ledger's own decoder before anything is published:
one invalid event and nothing of the request goes out."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.events.codec import Rejection, decode
from shared.events.envelope import Identifier, Qty, Timestamp
from shared.http import body_within, error
from shared.settings import Settings

from ..adapters.publisher import Publisher
from ..adapters.store import GatewayStore
from ..domain.events import envelope, event_id, now, routed
from ..metrics import GatewayMetrics
from .auth import refusal

MAX_BODY = 16 * 1024 * 1024
MAX_EVENTS = 10_000
MAX_SMALL_BODY = 64 * 1024
IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


class Confirmation(BaseModel):
    """The body of POST /v1/replenishment/requests/{request_id}/confirm."""

    model_config = ConfigDict(extra="forbid")
    qty: Qty
    expected_at: Timestamp | None = None


def _checked(body: bytes) -> tuple[list[Any], list[dict[str, Any]]] | Response:
    """The events of a body (one object or an array), and the reasons of those refused."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        errors = [{"index": 0, "reason": "invalid_json", "detail": str(exc)[:200]}]
        return error_with(errors)
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        return error(400, "empty", "no events in the request")
    if len(items) > MAX_EVENTS:
        return error(413, "too_many", f"at most {MAX_EVENTS} events per request")
    events, errors = [], []
    for index, item in enumerate(items):
        checked = decode(orjson.dumps(item))
        if isinstance(checked, Rejection):
            errors.append({"index": index, "reason": checked.reason, "detail": checked.detail})
        else:
            events.append(item)
    return events, errors


def error_with(errors: list[dict[str, Any]]) -> Response:
    detail = "; ".join(f"#{e['index']} {e['reason']}: {e['detail']}" for e in errors[:5])
    return JSONResponse(
        {"error": "invalid_events", "detail": detail[:2000], "errors": errors}, status_code=400
    )


def event_routes(
    settings: Settings, publisher: Publisher, store: GatewayStore, metrics: GatewayMetrics
) -> list[Route]:
    token = settings.api_token.get_secret_value()

    async def post_events(request: Request) -> Response:
        if (refused := refusal(request, token)) is not None:
            return refused
        body = await body_within(request, MAX_BODY)
        if body is None:
            return error(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
        checked = _checked(body)
        if isinstance(checked, Response):
            return checked
        events, errors = checked
        if errors:
            for e in errors:
                metrics.refused.labels(e["reason"]).inc()
            return error_with(errors)
        out = [routed(e) for e in events]
        await publisher.publish(out, "api")
        results = [
            {"index": i, "event_id": r.event["event_id"], "topic": r.topic, "status": "published"}
            for i, r in enumerate(out)
        ]
        return JSONResponse({"published": len(out), "results": results}, status_code=202)

    async def update(request: Request, kind: str) -> Response:
        if (refused := refusal(request, token)) is not None:
            return refused
        request_id = request.path_params["request_id"]
        if decode_identifier(request_id) is None:
            return error(400, "bad_parameter", "request_id: 1 to 128 printable characters")
        body = await body_within(request, MAX_SMALL_BODY)
        if body is None:
            return error(413, "too_large", f"the body exceeds {MAX_SMALL_BODY} bytes")
        if kind == "confirmed":
            item = await store.request_item(request_id)
            if item is None:
                return error(404, "unknown_request", f"no replenishment request {request_id!r}")
            fields = _confirmation(body)
            if isinstance(fields, Response):
                return fields
            data: dict[str, Any] = {"request_id": request_id, "sku": item[0], "location": item[1]}
            data |= fields
        else:
            data = {"request_id": request_id}
        ident = event_id("replenishment", request_id, kind)
        event = envelope(ident, f"replenishment.{kind}", now(), "gateway", data)
        first = await store.first_update(request_id, kind, event)
        if first["data"] != event["data"]:
            return error(
                409,
                "conflict",
                f"request {request_id!r} was already {kind} with other figures: {first['data']}",
            )
        checked = decode(orjson.dumps(first))
        if isinstance(checked, Rejection):  # pragma: no cover - the fields were checked above
            return error(400, checked.reason, checked.detail)
        await publisher.publish([routed(first)], "api")
        return JSONResponse({"event_id": first["event_id"], "event": first}, status_code=202)

    async def confirm(request: Request) -> Response:
        return await update(request, "confirmed")

    async def cancel(request: Request) -> Response:
        return await update(request, "cancelled")

    return [
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/replenishment/requests/{request_id}/confirm", confirm, methods=["POST"]),
        Route("/v1/replenishment/requests/{request_id}/cancel", cancel, methods=["POST"]),
    ]


def decode_identifier(value: str) -> str | None:
    try:
        return IDENTIFIER.validate_python(value)
    except ValidationError:
        return None


def _confirmation(body: bytes) -> dict[str, Any] | Response:
    """``qty`` and the optional ``expected_at`` of a confirmation body, as sent."""
    try:
        parsed = orjson.loads(body or b"{}")
        Confirmation.model_validate(parsed)
    except orjson.JSONDecodeError:
        return error(400, "invalid_json", "the body is not JSON")
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return error(400, "bad_parameter", f"{where}: {first['msg']}")
    fields: dict[str, Any] = {"qty": parsed["qty"]}
    if parsed.get("expected_at") is not None:
        fields["expected_at"] = parsed["expected_at"]
    return fields
