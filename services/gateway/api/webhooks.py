"""POST /v1/webhooks/shopify and /v1/webhooks/woocommerce: signature first (over the raw
bytes, before anything parses them), then the mapping, then Kafka, then 200.

Webhooks are most of the gateway's traffic, so :class:`WebhookApp` answers these two POSTs itself,
straight from the ASGI messages, before the Starlette app and its middleware, routing and
request and response objects; every other request (another method on these paths included) goes
to the Starlette app. The same handlers also serve as Starlette routes."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.events.codec import Rejection, decode
from shared.http import body_within
from shared.settings import Settings

from ..adapters.publisher import Publisher
from ..domain.events import routed
from ..domain.shopify import Mapped, ShopifyConfig, shopify_events
from ..domain.signatures import body_signed
from ..domain.woocommerce import woocommerce_events
from ..metrics import GatewayMetrics

log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024 * 1024
WOO_PING = re.compile(rb"^webhook_id=\d+$")  # WooCommerce's unsigned ping on creation
SHOPIFY_PATH, WOOCOMMERCE_PATH = "/v1/webhooks/shopify", "/v1/webhooks/woocommerce"

Headers = Mapping[str, str]  # lower-case names; the first value of a repeated header
Answer = tuple[int, bytes]  # status and JSON body
Handler = Callable[[Headers, bytes], Awaitable[Answer]]


def answer(content: dict[str, Any], status: int = 200) -> Answer:
    return status, orjson.dumps(content)


def refusal(status: int, code: str, detail: str) -> Answer:
    """The contract's error shape."""
    return answer({"error": code, "detail": detail}, status)


TOO_LARGE = refusal(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
UNAVAILABLE = refusal(503, "unavailable", "Kafka or PostgreSQL did not answer; try again")


def header(headers: Headers, name: str) -> str:
    """A Shopify header under its classic (X-Shopify-) or new (Shopify-) name."""
    return headers.get("x-shopify-" + name) or headers.get("shopify-" + name) or ""


def secrets_of(setting: str) -> list[str]:
    """The secrets of a setting: several, comma-separated, while a shop rotates its secret
    (Shopify signs with the oldest unrevoked one for up to an hour after a rotation)."""
    return [part.strip() for part in setting.split(",") if part.strip()]


def signed_by_any(body: bytes, signature: str | None, secrets: list[str]) -> bool:
    return any([body_signed(body, signature, secret) for secret in secrets])


def webhook_handlers(
    settings: Settings, publisher: Publisher, metrics: GatewayMetrics
) -> dict[str, Handler]:
    """The handler of each webhook path: headers and the raw body in, the answer out."""
    shopify_secrets = secrets_of(settings.shopify_webhook_secret.get_secret_value())
    woo_secrets = secrets_of(settings.woocommerce_webhook_secret.get_secret_value())
    config = ShopifyConfig(
        settings.shopify_locations,
        settings.shopify_default_location,
        settings.shopify_return_condition,
    )

    async def publish(source: str, topic: str, mapped: Mapped) -> Answer:
        if not mapped.handled:
            metrics.unhandled.labels(source, topic[:64]).inc()
            return answer({"published": 0, "ignored": "topic or status not mapped"})
        if mapped.skipped_lines:
            metrics.skipped_lines.labels(source, "no_sku").inc(mapped.skipped_lines)
        events, refused = [], []
        for event in mapped.events:
            value = orjson.dumps(event)
            checked = decode(value)
            if isinstance(checked, Rejection):
                metrics.skipped_lines.labels(source, checked.reason).inc()
                refused.append(
                    {"type": event["type"], "reason": checked.reason, "detail": checked.detail}
                )
                log.warning(
                    "a webhook's event does not pass the contract; left out",
                    extra={"source": source, "reason": checked.reason},
                )
            else:
                events.append(routed(event, value))
        await publisher.publish(events, source)
        body: dict[str, Any] = {
            "published": len(events),
            "event_ids": [e.event["event_id"] for e in events],
            "skipped_lines": mapped.skipped_lines,
        }
        if refused:
            body["refused"] = refused
        return answer(body)

    async def shopify(headers: Headers, body: bytes) -> Answer:
        if not signed_by_any(body, header(headers, "hmac-sha256"), shopify_secrets):
            metrics.signature_failures.labels("shopify").inc()
            return refusal(401, "bad_signature", "X-Shopify-Hmac-Sha256 does not match the body")
        topic, webhook_id = header(headers, "topic"), header(headers, "webhook-id")
        if not topic or not webhook_id:
            return refusal(400, "bad_request", "X-Shopify-Topic and X-Shopify-Webhook-Id needed")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return refusal(400, "invalid_json", "the body is not JSON")
        metrics.labelled(metrics.webhooks, "shopify", topic[:64]).inc()
        mapped = shopify_events(topic, webhook_id, header(headers, "shop-domain"), payload, config)
        return await publish("shopify", topic, mapped)

    async def woocommerce(headers: Headers, body: bytes) -> Answer:
        signature = headers.get("x-wc-webhook-signature")
        if signature is None and WOO_PING.match(body.strip()):
            return answer({"published": 0, "ignored": "ping"})
        if not signed_by_any(body, signature, woo_secrets):
            metrics.signature_failures.labels("woocommerce").inc()
            return refusal(401, "bad_signature", "X-WC-Webhook-Signature does not match the body")
        topic = headers.get("x-wc-webhook-topic", "")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return refusal(400, "invalid_json", "the body is not JSON")
        metrics.labelled(metrics.webhooks, "woocommerce", topic[:64]).inc()
        store = headers.get("x-wc-webhook-source", "")
        mapped = woocommerce_events(topic, store, payload, settings.woocommerce_location)
        return await publish("woocommerce", topic, mapped)

    return {SHOPIFY_PATH: shopify, WOOCOMMERCE_PATH: woocommerce}


def webhook_routes(handlers: Mapping[str, Handler]) -> list[Route]:
    """The handlers as Starlette routes (for POST; other methods get Starlette's 405)."""

    def route(path: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            body = await body_within(request, MAX_BODY)
            status, content = TOO_LARGE if body is None else await handler(request.headers, body)
            return Response(content, status, media_type="application/json")

        endpoint.__name__ = path.rpartition("/")[2]
        return Route(path, endpoint, methods=["POST"])

    return [route(path, handler) for path, handler in handlers.items()]


class WebhookApp:
    """ASGI: a POST to a webhook path is answered by its handler here; anything else goes to
    ``app``. As in the Starlette app, an exception is logged and answered 503."""

    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            body = await _body_within(headers, receive, MAX_BODY)
            status, content = TOO_LARGE if body is None else await handler(headers, body)
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            log.error("request failed", exc_info=exc, extra={"path": scope["path"]})
            status, content = UNAVAILABLE
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _body_within(headers: Headers, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it proves longer than ``limit`` bytes (declared or
    received), as :func:`shared.http.body_within`."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
