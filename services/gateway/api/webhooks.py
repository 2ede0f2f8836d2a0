"""POST /v1/webhooks/shopify and /v1/webhooks/woocommerce: signature first (over the raw
bytes, before anything parses them), then the mapping, then Kafka, then 200."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.events.codec import Rejection, decode
from shared.http import body_within, error
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


def header(request: Request, name: str) -> str:
    """A Shopify header under its classic (X-Shopify-) or new (Shopify-) name."""
    h = request.headers
    return h.get(f"x-shopify-{name}") or h.get(f"shopify-{name}") or ""


def secrets_of(setting: str) -> list[str]:
    """The secrets of a setting: several, comma-separated, while a shop rotates its secret
    (Shopify signs with the oldest unrevoked one for up to an hour after a rotation)."""
    return [part.strip() for part in setting.split(",") if part.strip()]


def signed_by_any(body: bytes, signature: str | None, secrets: list[str]) -> bool:
    return any([body_signed(body, signature, secret) for secret in secrets])


def webhook_routes(
    settings: Settings, publisher: Publisher, metrics: GatewayMetrics
) -> list[Route]:
    shopify_secrets = secrets_of(settings.shopify_webhook_secret.get_secret_value())
    woo_secrets = secrets_of(settings.woocommerce_webhook_secret.get_secret_value())
    config = ShopifyConfig(
        settings.shopify_locations,
        settings.shopify_default_location,
        settings.shopify_return_condition,
    )

    async def publish(source: str, topic: str, mapped: Mapped) -> Response:
        if not mapped.handled:
            metrics.unhandled.labels(source, topic[:64]).inc()
            return JSONResponse({"published": 0, "ignored": "topic or status not mapped"})
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
        return Response(orjson.dumps(body), media_type="application/json")

    async def shopify(request: Request) -> Response:
        body = await body_within(request, MAX_BODY)
        if body is None:
            return error(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
        if not signed_by_any(body, header(request, "hmac-sha256"), shopify_secrets):
            metrics.signature_failures.labels("shopify").inc()
            return error(401, "bad_signature", "X-Shopify-Hmac-Sha256 does not match the body")
        topic, webhook_id = header(request, "topic"), header(request, "webhook-id")
        if not topic or not webhook_id:
            return error(400, "bad_request", "X-Shopify-Topic and X-Shopify-Webhook-Id needed")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error(400, "invalid_json", "the body is not JSON")
        metrics.labelled(metrics.webhooks, "shopify", topic[:64]).inc()
        mapped = shopify_events(topic, webhook_id, header(request, "shop-domain"), payload, config)
        return await publish("shopify", topic, mapped)

    async def woocommerce(request: Request) -> Response:
        body = await body_within(request, MAX_BODY)
        if body is None:
            return error(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
        signature = request.headers.get("x-wc-webhook-signature")
        if signature is None and WOO_PING.match(body.strip()):
            return JSONResponse({"published": 0, "ignored": "ping"})
        if not signed_by_any(body, signature, woo_secrets):
            metrics.signature_failures.labels("woocommerce").inc()
            return error(401, "bad_signature", "X-WC-Webhook-Signature does not match the body")
        topic = request.headers.get("x-wc-webhook-topic", "")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error(400, "invalid_json", "the body is not JSON")
        metrics.labelled(metrics.webhooks, "woocommerce", topic[:64]).inc()
        store = request.headers.get("x-wc-webhook-source", "")
        mapped = woocommerce_events(topic, store, payload, settings.woocommerce_location)
        return await publish("woocommerce", topic, mapped)

    return [
        Route("/v1/webhooks/shopify", shopify, methods=["POST"]),
        Route("/v1/webhooks/woocommerce", woocommerce, methods=["POST"]),
    ]
