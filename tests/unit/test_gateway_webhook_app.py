"""The gateway's webhook POSTs answered straight from ASGI (WebhookApp) answer exactly as the same
handlers behind Starlette's routing and middleware do: status, body and what is published, for
good, forged, malformed and oversized webhooks; other methods and paths reach Starlette; a
producer that fails gives the contract's 503, and nothing is answered 2xx before Kafka has it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.gateway.adapters.publisher import Publisher
from services.gateway.api.webhooks import MAX_BODY, WebhookApp
from services.gateway.app import GatewayService
from shared.settings import Settings

from ..gateway_fixtures import shopify_headers, shopify_order, signature, woo_order

SHOPIFY_SECRET, WOO_SECRET = "unit-shopify-secret", "unit-woo-secret"


class Producer:
    """Records each send; acknowledges it at once, or when ``acknowledge`` is called if
    ``holding``; fails them all if ``fails``."""

    def __init__(self, fails: bool = False, holding: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.fails, self.holding = fails, holding
        self.unacknowledged: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sent.append((topic, value, key))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fails:
            ack.set_exception(ConnectionError("no broker"))
        elif self.holding:
            self.unacknowledged.append(ack)
        else:
            ack.set_result(None)
        return ack

    def acknowledge(self) -> None:
        for ack in self.unacknowledged:
            ack.set_result(None)


def gateway(producer: Producer) -> WebhookApp:
    settings = Settings(
        shopify_webhook_secret=SecretStr(SHOPIFY_SECRET),
        woocommerce_webhook_secret=SecretStr(WOO_SECRET),
    )
    service = GatewayService(settings)
    app = service.app(None, Publisher(producer, "", service.metrics))  # type: ignore[arg-type]
    assert isinstance(app, WebhookApp)
    return app


def requests() -> list[tuple[str, str, bytes, dict[str, str]]]:
    order = orjson.dumps(shopify_order(1001))
    woo = orjson.dumps(woo_order(727))
    good = shopify_headers(order, "orders/create", "w-1", SHOPIFY_SECRET)
    return [
        ("POST", "/v1/webhooks/shopify", order, good),
        ("POST", "/v1/webhooks/shopify", order + b" ", good),  # tampered
        ("POST", "/v1/webhooks/shopify", order, {**good, "X-Shopify-Hmac-Sha256": ""}),
        (
            "POST",
            "/v1/webhooks/shopify",
            b"{",
            shopify_headers(b"{", "orders/create", "w", SHOPIFY_SECRET),
        ),
        (
            "POST",
            "/v1/webhooks/shopify",
            order,
            {k: v for k, v in good.items() if "Topic" not in k},
        ),
        (
            "POST",
            "/v1/webhooks/shopify",
            order,
            shopify_headers(order, "carts/update", "w-2", SHOPIFY_SECRET),
        ),
        (
            "POST",
            "/v1/webhooks/shopify",
            order,
            {k.replace("X-Shopify-", "Shopify-"): v for k, v in good.items()},
        ),
        (
            "POST",
            "/v1/webhooks/woocommerce",
            woo,
            {
                "X-WC-Webhook-Signature": signature(woo, WOO_SECRET),
                "X-WC-Webhook-Topic": "order.created",
                "X-WC-Webhook-Source": "https://shop.example/",
            },
        ),
        ("POST", "/v1/webhooks/woocommerce", b"webhook_id=12", {}),
        ("POST", "/v1/webhooks/woocommerce", woo, {"X-WC-Webhook-Signature": "AAAA"}),
        ("GET", "/v1/webhooks/shopify", b"", {}),
        ("POST", "/healthz", b"", {}),
    ]


async def answers(app: Any, producer: Producer) -> list[tuple[int, Any, list[Any]]]:
    seen = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method, path, body, headers in requests():
            producer.sent.clear()
            answer = await client.request(method, path, content=body, headers=headers)
            json = answer.headers.get("content-type") == "application/json"
            content = answer.json() if json else answer.text
            seen.append((answer.status_code, content, list(producer.sent)))
    return seen


async def test_webhooks_answered_from_asgi_as_through_starlette() -> None:
    producer = Producer()
    app = gateway(producer)
    direct, through_starlette = await answers(app, producer), await answers(app.app, producer)
    assert direct == through_starlette
    statuses = [status for status, _, _ in direct]
    assert statuses == [200, 401, 401, 400, 400, 200, 200, 200, 200, 401, 405, 405]
    assert direct[0][1]["published"] == 1
    assert len(direct[0][2]) == 1
    assert all(not sent for status, _, sent in direct if status != 200)


async def test_a_body_over_the_limit_is_refused_unread_and_a_failing_producer_gives_503() -> None:
    app = gateway(Producer())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        big = await c.post("/v1/webhooks/shopify", content=b" " * (MAX_BODY + 1))
        assert big.status_code == 413
        assert big.json()["error"] == "too_large"
    failing = gateway(Producer(fails=True))
    body = orjson.dumps(shopify_order(1002))
    headers = shopify_headers(body, "orders/create", "w-3", SHOPIFY_SECRET)
    transport = httpx.ASGITransport(app=failing)
    async with httpx.AsyncClient(transport=transport, base_url="http://g") as c:
        answer = await c.post("/v1/webhooks/shopify", content=body, headers=headers)
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable"


async def test_the_answer_waits_for_kafka() -> None:
    producer = Producer(holding=True)
    app = gateway(producer)
    body = orjson.dumps(shopify_order(1003))
    headers = shopify_headers(body, "orders/create", "w-4", SHOPIFY_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        pending = asyncio.create_task(c.post("/v1/webhooks/shopify", content=body, headers=headers))
        await asyncio.sleep(0.05)
        assert not pending.done()
        assert len(producer.sent) == 1
        producer.acknowledge()
        assert (await pending).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_other_methods_on_a_webhook_path_get_starlettes_405(method: str) -> None:
    app = gateway(Producer())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        assert (await c.request(method, "/v1/webhooks/woocommerce")).status_code == 405
