"""The gateway against the real broker and database, with real HTTP receivers started here.

Webhooks in: a Shopify or WooCommerce delivery with a valid signature becomes stock the ledger
and projector show, once however often it is delivered; a bad signature is refused with nothing
published. Events in: one invalid event in a request and nothing is published. Webhooks out:
each replenishment request reaches every receiver signed per Standard Webhooks, retried until
taken, in order per item, through a kill -9 of the gateway, a receiver that is down holding up
no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.adapters.store import GatewayStore
from services.gateway.app import create_service as create_gateway
from services.gateway.domain.deliveries import DEFAULT_TYPES, Endpoint, message_of
from services.gateway.domain.signatures import new_secret
from services.ledger.app import create_service as create_ledger
from services.projector.app import create_service as create_projector
from shared.http import serve_http
from shared.settings import Settings
from shared.topics import ORDERS, REPLENISHMENT_REQUESTS, REPLENISHMENT_UPDATES, SCANS

from ..gateway_fixtures import (
    shopify_fulfillment,
    shopify_headers,
    shopify_order,
    shopify_refund,
    woo_headers,
    woo_order,
)
from ..kafka_io import eventually, produce
from ..services import free_port, running, start_process
from .test_projector import caught_up, read_model

pytestmark = pytest.mark.integration
TOKEN = "gateway-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gateway_settings(settings: Settings, **more: Any) -> Settings:
    return settings.model_copy(
        update={
            "gateway_port": free_port(),
            "http_port": free_port(),
            "api_token": SecretStr(TOKEN),
            "shopify_locations": {"655441491": "main"},
            "webhook_backoff_initial_s": 0.2,
            "webhook_backoff_max_s": 1.0,
            "webhook_timeout_s": 2.0,
            **more,
        }
    )


async def listening(port: int) -> None:
    """Wait until the port takes connections: a service reports ready once Kafka and the
    database answer, which can be before its HTTP server has bound its socket."""
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running(create_gateway(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_port}") as client,
    ):
        await listening(settings.gateway_port)
        yield client


async def end_offsets(settings: Settings, topic: str) -> int:
    """How many records the topic holds (every partition's end offset, summed)."""
    name = settings.topic_prefix + topic
    consumer = AIOKafkaConsumer(name, bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(name) or set()
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def level(settings: Settings, sku: str, location: str = "main") -> dict[str, int]:
    return (await read_model(settings)).get((sku, location), {})


async def settled(settings: Settings) -> None:
    await eventually(lambda: caught_up(settings), 60)


def received(sku: str, qty: int, location: str = "main") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "scan.received",
        "schema_version": 1,
        "occurred_at": "2026-11-01T00:00:00Z",
        "data": {"sku": sku, "location": location, "qty": qty},
    }


async def shopify(
    client: httpx.AsyncClient, topic: str, payload: Any, webhook_id: str, secret: str
) -> httpx.Response:
    body = orjson.dumps(payload)
    headers = shopify_headers(body, topic, webhook_id, secret)
    return await client.post("/v1/webhooks/shopify", content=body, headers=headers)


# ---------------------------------------------------------------------------------- webhooks in


async def test_a_shopify_order_delivered_three_times_is_committed_once_then_ships_and_returns(
    settings: Settings,
):
    settings = gateway_settings(settings)
    secret = settings.shopify_webhook_secret.get_secret_value()
    assert secret == "dev-shopify-secret"
    async with (
        running(create_ledger(settings)),
        running(create_projector(settings)),
        gateway(settings) as client,
    ):
        stocked = await client.post(
            "/v1/events",
            content=orjson.dumps([received("IPOD2008GREEN", 10), received("IPOD2008RED", 5)]),
            headers=AUTH,
        )
        assert stocked.status_code == 202, stocked.text
        for _ in range(3):
            answer = await shopify(client, "orders/create", shopify_order(), "wh-1", secret)
            assert answer.status_code == 200, answer.text
            assert answer.json()["published"] == 1
            assert answer.json()["skipped_lines"] == 1
        await settled(settings)
        assert await level(settings, "IPOD2008GREEN") | {} == {
            "on_hand": 10,
            "committed": 2,
            "damaged": 0,
            "quality_control": 0,
            "incoming": 0,
        }
        assert (await level(settings, "IPOD2008RED"))["committed"] == 1

        shipped = await shopify(
            client, "fulfillments/create", shopify_fulfillment(), "wh-2", secret
        )
        assert shipped.status_code == 200
        returned = await shopify(client, "refunds/create", shopify_refund(), "wh-3", secret)
        assert returned.status_code == 200
        assert returned.json()["published"] == 1  # the line refunded without restock moves nothing
        await settled(settings)
        green = await level(settings, "IPOD2008GREEN")
        assert green == {
            "on_hand": 9,
            "committed": 0,
            "damaged": 0,
            "quality_control": 1,
            "incoming": 0,
        }

        other = shopify_order(order_id=99)
        await shopify(client, "orders/create", other, "wh-4", secret)
        cancelled = await shopify(
            client,
            "orders/cancelled",
            other | {"cancelled_at": "2026-12-01T00:00:00Z"},
            "wh-5",
            secret,
        )
        assert cancelled.status_code == 200
        await settled(settings)
        assert (await level(settings, "IPOD2008RED"))["committed"] == 1  # order 99's line gone

        ignored = await shopify(client, "products/update", {"id": 5}, "wh-6", secret)
        assert ignored.status_code == 200
        assert ignored.json()["published"] == 0
        metrics = (await client.get("/metrics")).text
        assert (
            'stockledger_gateway_webhooks_unhandled_total{source="shopify",'
            'topic="products/update"} 1.0' in metrics
        )
        assert (
            'stockledger_gateway_lines_skipped_total{reason="no_sku",source="shopify"}' in metrics
        )


async def test_a_tampered_or_wrongly_signed_shopify_webhook_is_refused_and_publishes_nothing(
    settings: Settings,
):
    settings = gateway_settings(settings)
    async with gateway(settings) as client:
        body = orjson.dumps(shopify_order())
        headers = shopify_headers(body, "orders/create", "wh-1", "dev-shopify-secret")
        tampered = body.replace(b'"quantity":2', b'"quantity":20')
        assert tampered != body
        answer = await client.post("/v1/webhooks/shopify", content=tampered, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"] == "bad_signature"
        wrong = shopify_headers(body, "orders/create", "wh-1", "not-the-secret")
        assert (
            await client.post("/v1/webhooks/shopify", content=body, headers=wrong)
        ).status_code == 401
        unsigned = {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"}
        assert (
            await client.post("/v1/webhooks/shopify", content=body, headers=unsigned)
        ).status_code == 401
        woo_body = orjson.dumps(woo_order())
        woo_wrong = woo_headers(woo_body, "order.created", "dev-shopify-secret")
        assert (
            await client.post("/v1/webhooks/woocommerce", content=woo_body, headers=woo_wrong)
        ).status_code == 401
        metrics = (await client.get("/metrics")).text
        assert 'stockledger_gateway_signature_failures_total{source="shopify"} 3.0' in metrics
    assert await end_offsets(settings, ORDERS) == 0
    assert await end_offsets(settings, SCANS) == 0


async def test_woocommerce_orders_are_placed_once_and_fulfilled_or_cancelled_by_status(
    settings: Settings,
):
    settings = gateway_settings(settings)
    secret = settings.woocommerce_webhook_secret.get_secret_value()
    assert secret == "dev-woocommerce-secret"

    async def woo(
        client: httpx.AsyncClient, topic: str, payload: Any, delivery: str
    ) -> httpx.Response:
        body = orjson.dumps(payload)
        return await client.post(
            "/v1/webhooks/woocommerce",
            content=body,
            headers=woo_headers(body, topic, secret, delivery),
        )

    async with (
        running(create_ledger(settings)),
        running(create_projector(settings)),
        gateway(settings) as client,
    ):
        ping = await client.post(
            "/v1/webhooks/woocommerce",
            content=b"webhook_id=12",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert ping.status_code == 200
        await client.post(
            "/v1/events", content=orjson.dumps(received("WOO-SINGLE-1", 10)), headers=AUTH
        )
        # the same second's delivery id for two orders, and order 727 delivered three times
        for delivery in ("same", "same", "other"):
            assert (await woo(client, "order.created", woo_order(727), delivery)).status_code == 200
        assert (await woo(client, "order.created", woo_order(728), "same")).status_code == 200
        await settled(settings)
        assert (await level(settings, "WOO-SINGLE-1"))["committed"] == 4  # 2 per order, once each

        for _ in range(2):
            done = await woo(client, "order.updated", woo_order(727, "completed"), "x")
            assert done.json()["published"] == 1
        await woo(client, "order.updated", woo_order(728, "cancelled"), "x")
        on_hold = await woo(client, "order.updated", woo_order(729, "on-hold"), "x")
        assert on_hold.json()["published"] == 0
        await settled(settings)
        assert await level(settings, "WOO-SINGLE-1") == {
            "on_hand": 8,
            "committed": 0,
            "damaged": 0,
            "quality_control": 0,
            "incoming": 0,
        }


# ------------------------------------------------------------------------------------ events in


async def test_events_with_one_invalid_publish_nothing_and_all_valid_publish_each_once(
    settings: Settings,
):
    settings = gateway_settings(settings)
    async with gateway(settings) as client:
        good = [received("S1", 3), received("S2", 4)]
        unknown = received("S3", 1) | {"type": "scan.teleported"}
        bad_qty = received("S4", 1)
        bad_qty["data"]["qty"] = -1
        mixed = await client.post(
            "/v1/events", content=orjson.dumps([*good, unknown, bad_qty]), headers=AUTH
        )
        assert mixed.status_code == 400
        reasons = {e["index"]: e["reason"] for e in mixed.json()["errors"]}
        assert reasons == {2: "unknown_type", 3: "schema"}
        garbled = await client.post("/v1/events", content=b"{nope", headers=AUTH)
        assert garbled.status_code == 400
        assert garbled.json()["errors"][0]["reason"] == "invalid_json"
        assert (await client.post("/v1/events", content=orjson.dumps(good))).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            await client.post("/v1/events", content=orjson.dumps(good), headers=wrong)
        ).status_code == 403
        assert await end_offsets(settings, SCANS) == 0

        accepted = await client.post("/v1/events", content=orjson.dumps(good), headers=AUTH)
        assert accepted.status_code == 202
        results = accepted.json()["results"]
        assert [r["event_id"] for r in results] == [e["event_id"] for e in good]
        assert {r["status"] for r in results} == {"published"}
        one = await client.post("/v1/events", content=orjson.dumps(received("S5", 1)), headers=AUTH)
        assert one.status_code == 202
    assert await end_offsets(settings, SCANS) == 3


# ----------------------------------------------------------------------------------- webhooks out


@dataclass
class Receiver:
    """A real HTTP receiver: answers 500 to the first ``fail_first`` attempts of each message,
    and records every request it was sent."""

    fail_first: int = 0
    delay_s: float = 0.0
    port: int = field(default_factory=free_port)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[str]:
        """Message ids answered with 2xx, in the order they were."""
        return [h["webhook-id"] for h, _ in self.requests if h.get("x-answered") == "200"]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            ident = headers.get("webhook-id", "")
            self.tries[ident] = self.tries.get(ident, 0) + 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status = 500 if self.tries[ident] <= self.fail_first else 200
            headers["x-answered"] = str(status)
            self.requests.append((headers, body))
            return Response(status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@contextlib.asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(serve_http(r.app(), "127.0.0.1", r.port, stopping)) for r in receivers
    ]
    await asyncio.sleep(0.3)
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


SKUS = ("SKU-0", "SKU-1", "SKU-2")


def requested(n: int, location: str = "main", sku: str | None = None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "replenishment.requested",
        "schema_version": 1,
        "occurred_at": "2026-12-01T00:00:00Z",
        "source": "replenisher",
        "data": {
            "request_id": f"req-{n}",
            "sku": sku or SKUS[n % len(SKUS)],
            "location": location,
            "qty": 10 + n,
            "kind": "purchase",
            "needed_by": "2026-12-08T00:00:00Z",
            "reason": {"policy": "lines"},
        },
    }


async def publish_requests(settings: Settings, events: list[dict[str, Any]]) -> None:
    # keyed as the replenisher keys them: location|sku, so one item's requests stay in order
    await produce(
        settings.kafka_bootstrap_servers,
        settings.topic_prefix + REPLENISHMENT_REQUESTS,
        [(f"{e['data']['location']}|{e['data']['sku']}".encode(), orjson.dumps(e)) for e in events],
    )


async def register(client: httpx.AsyncClient, name: str, url: str, **more: Any) -> str:
    secret = new_secret()
    answer = await client.put(
        "/v1/webhooks/endpoints",
        params={"name": name},
        content=orjson.dumps({"url": url, "secret": secret, **more}),
        headers=AUTH,
    )
    assert answer.status_code in (200, 201), answer.text
    return secret


async def test_requests_reach_a_flaky_receiver_signed_in_order_while_a_down_one_holds_up_nothing(
    settings: Settings,
):
    settings = gateway_settings(settings)
    flaky, healthy = Receiver(fail_first=2), Receiver()
    hanging = Receiver(delay_s=5.0)  # answers after the gateway's 2 s timeout, every time
    events = [requested(n) for n in range(12)]
    async with serving(flaky, healthy, hanging), gateway(settings) as client:
        flaky_secret = await register(client, "flaky", flaky.url)
        healthy_secret = await register(client, "healthy", healthy.url)
        await register(client, "down", f"http://127.0.0.1:{free_port()}/hook")
        await register(client, "hanging", hanging.url)
        await register(client, "elsewhere", healthy.url, locations=["FR"])
        listed = (await client.get("/v1/webhooks/endpoints", headers=AUTH)).json()["endpoints"]
        assert [e["name"] for e in listed] == ["down", "elsewhere", "flaky", "hanging", "healthy"]
        assert all("secret" not in e for e in listed)
        await publish_requests(settings, events)

        ids = [e["event_id"] for e in events]
        await eventually(lambda: _async(set(healthy.delivered()) == set(ids)), 20)
        await eventually(lambda: _async(set(flaky.delivered()) == set(ids)), 30)
        assert len(healthy.delivered()) == len(ids)  # the FR-only endpoint got nothing

        for receiver, secret in ((flaky, flaky_secret), (healthy, healthy_secret)):
            for headers, body in receiver.requests:
                Webhook(secret).verify(body, headers)  # raises on a bad signature
                sent = orjson.loads(body)
                assert sent["type"] == "replenishment.requested"
                assert sent["data"] == next(
                    e["data"] for e in events if e["event_id"] == headers["webhook-id"]
                )
        assert all(flaky.tries[i] == 3 for i in ids)
        # in order per item: each sku's requests arrive as published
        for sku in {e["data"]["sku"] for e in events}:
            published = [e["event_id"] for e in events if e["data"]["sku"] == sku]
            arrived = [i for i in flaky.delivered() if i in published]
            assert arrived == published

        # a forged body under a real signature is detected
        headers, body = flaky.requests[-1]
        with pytest.raises(Exception, match="signature"):
            Webhook(flaky_secret).verify(body.replace(b'"qty":', b'"qty":9'), headers)

        down = (
            await client.get(
                "/v1/webhooks/deliveries",
                params={"status": "pending", "name": "down"},
                headers=AUTH,
            )
        ).json()["deliveries"]
        assert {d["message_id"] for d in down} == set(ids)
        # in order per item: only the first request of each item has been tried yet
        tried = {d["message_id"] for d in down if d["attempts"] >= 1 and d["last_error"]}
        firsts = {next(e["event_id"] for e in events if e["data"]["sku"] == s) for s in SKUS}
        assert tried == firsts
        done = (
            await client.get(
                "/v1/webhooks/deliveries", params={"status": "delivered"}, headers=AUTH
            )
        ).json()["deliveries"]
        assert len(done) == 2 * len(ids)
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            attempts = await conn.fetchval(
                "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
                " ON d.seq = a.delivery_seq WHERE d.endpoint = 'flaky'"
            )
        finally:
            await conn.close()
        assert attempts == 3 * len(ids)
        metrics = (await client.get("/metrics")).text
        assert "stockledger_gateway_delivery_retries_total" in metrics
        removed = await client.delete(
            "/v1/webhooks/endpoints", params={"name": "down"}, headers=AUTH
        )
        assert removed.status_code == 200
        failed = (
            await client.get("/v1/webhooks/deliveries", params={"status": "failed"}, headers=AUTH)
        ).json()["deliveries"]
        assert len(failed) == len(ids)


async def _async(value: bool) -> bool:
    return value


async def test_no_request_is_lost_when_the_gateway_is_killed_mid_delivery(
    settings: Settings, tmp_path: Path
):
    settings = gateway_settings(settings)
    receiver = Receiver(delay_s=0.05)
    port = settings.gateway_port
    env = {
        "STOCKLEDGER_GATEWAY_PORT": str(port),
        "STOCKLEDGER_API_TOKEN": TOKEN,
        "STOCKLEDGER_WEBHOOK_BACKOFF_INITIAL_S": "0.2",
        "STOCKLEDGER_WEBHOOK_BACKOFF_MAX_S": "1",
        "STOCKLEDGER_WEBHOOK_TIMEOUT_S": "2",
    }
    log = tmp_path / "gateway.log"
    events = [requested(n, sku=f"K{n % 5}") for n in range(60)]

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async with serving(receiver):
        process = start_process("gateway", settings, log, **env)
        try:
            await eventually(up, 30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await register(client, "r", receiver.url)
            await publish_requests(settings, events)
            await eventually(lambda: _async(len(receiver.delivered()) >= 10), 30)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            before = len(receiver.delivered())
            assert before < len(events), "killed too late to prove anything"
            process = start_process("gateway", settings, log, **env)
            ids = {e["event_id"] for e in events}
            await eventually(lambda: _async(set(receiver.delivered()) == ids), 60)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    for sku in {e["data"]["sku"] for e in events}:
        published = [e["event_id"] for e in events if e["data"]["sku"] == sku]
        arrived = [i for i in receiver.delivered() if i in published]
        firsts = list(dict.fromkeys(arrived))  # a redelivery after the kill may repeat one
        assert firsts == published


# ------------------------------------------------------------------- confirmations over HTTP


async def test_a_warehouse_confirms_and_cancels_over_http_with_one_effect_per_call_repeated(
    settings: Settings,
):
    settings = gateway_settings(settings)
    async with gateway(settings) as client:
        await publish_requests(settings, [requested(1), requested(2)])
        url = "/v1/replenishment/requests/{}/{}"

        async def known() -> bool:
            answer = await client.post(
                url.format("req-1", "confirm"), content=b'{"qty": 11}', headers=AUTH
            )
            return answer.status_code != 404

        await eventually(known, 20)
        again = await client.post(
            url.format("req-1", "confirm"), content=b'{"qty": 11}', headers=AUTH
        )
        assert again.status_code == 202
        event = again.json()["event"]
        assert event["type"] == "replenishment.confirmed"
        assert event["data"] == {
            "request_id": "req-1",
            "sku": "SKU-1",
            "location": "main",
            "qty": 11,
        }
        other = await client.post(
            url.format("req-1", "confirm"), content=b'{"qty": 5}', headers=AUTH
        )
        assert other.status_code == 409
        assert (
            await client.post(url.format("nope", "confirm"), content=b'{"qty": 1}', headers=AUTH)
        ).status_code == 404
        assert (
            await client.post(url.format("req-1", "confirm"), content=b'{"qty": 0}', headers=AUTH)
        ).status_code == 400
        assert (
            await client.post(url.format("req-1", "confirm"), content=b'{"qty": 1}')
        ).status_code == 401
        first = await client.post(url.format("req-2", "cancel"), headers=AUTH)
        second = await client.post(url.format("req-2", "cancel"), headers=AUTH)
        assert first.status_code == second.status_code == 202
        assert first.json()["event"] == second.json()["event"]

    consumer = AIOKafkaConsumer(
        settings.topic_prefix + REPLENISHMENT_UPDATES,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            while len(seen) < 4:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    seen += [orjson.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    by_type: dict[str, set[str]] = {}
    for e in seen:
        by_type.setdefault(e["type"], set()).add(orjson.dumps(e).decode())
    # each call published the same event again: one id and one content per request and kind
    assert {t: len(v) for t, v in by_type.items()} == {
        "replenishment.confirmed": 1,
        "replenishment.cancelled": 1,
    }


async def test_the_gateway_role_does_all_the_gateway_does_and_writes_no_stock_table(role_urls):
    pool = await asyncpg.create_pool(role_urls["gateway"], min_size=1, max_size=2)
    assert pool is not None
    try:
        store = GatewayStore(pool)
        endpoint = Endpoint("a", "http://x", new_secret(), None, frozenset(DEFAULT_TYPES))
        assert await store.put_endpoint(endpoint)
        message = message_of(REPLENISHMENT_REQUESTS, requested(1))
        assert message is not None
        assert await store.enqueue([("a", message)], [("req-1", "SKU-1", "main")]) == 1
        (claimed,) = await store.claim(10, 5.0, [])
        await store.record(claimed, datetime.now(UTC), 500, "HTTP 500", 3.0, "pending", 0.0)
        assert (await store.deliveries("pending", "a", 0, 10))[0]["attempts"] == 1
        pending, failing_s = await store.backlog()
        assert pending == 1
        assert 0 <= failing_s < 60
        assert await store.request_item("req-1") == ("SKU-1", "main")
        assert await store.first_update("req-1", "cancelled", {"x": 1}) == {"x": 1}
        assert await store.delete_endpoint("a")
        async with pool.acquire() as conn:
            for statement in (
                "INSERT INTO stock_levels (sku, location) VALUES ('s', 'l')",
                "SELECT * FROM ledger_entries LIMIT 1",
                "UPDATE replenishment_requests SET status = 'cancelled'",
                "INSERT INTO processed_events (event_id) VALUES (gen_random_uuid())",
                "DELETE FROM webhook_attempts",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
    finally:
        await pool.close()
