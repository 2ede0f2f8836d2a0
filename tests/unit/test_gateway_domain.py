"""The gateway's pure parts: Shopify and WooCommerce webhooks to contract events, signatures both
ways (Standard Webhooks' published test vector), outbound matching and retry waits."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.gateway.api.webhooks import secrets_of, signed_by_any
from services.gateway.domain.deliveries import (
    Endpoint,
    message_of,
    retry_delay,
    verdict,
    wants,
)
from services.gateway.domain.events import NAMESPACE, event_id, routed
from services.gateway.domain.shopify import ShopifyConfig, shopify_events
from services.gateway.domain.signatures import (
    body_signed,
    new_secret,
    secret_problem,
    standard_headers,
)
from services.gateway.domain.woocommerce import woocommerce_events
from shared.events.codec import Rejection, decode

from ..gateway_fixtures import (
    SHOP,
    shopify_fulfillment,
    shopify_order,
    shopify_refund,
    signature,
    woo_order,
)

CONFIG = ShopifyConfig({"655441491": "UK"}, "main", "inspect")


def valid(event: dict[str, Any]) -> bool:
    return not isinstance(decode(orjson.dumps(event)), Rejection)


def test_an_order_created_in_shopify_is_placed_with_its_sku_lines_and_the_tip_left_out():
    mapped = shopify_events("orders/create", "w-1", SHOP, shopify_order(), CONFIG)
    assert mapped.skipped_lines == 1
    (event,) = mapped.events
    assert valid(event)
    assert event["type"] == "order.placed"
    assert event["data"] == {
        "order_id": "450789469",
        "location": "main",
        "lines": [
            {"line_id": "466157049", "sku": "IPOD2008GREEN", "qty": 2},
            {"line_id": "518995019", "sku": "IPOD2008RED", "qty": 1},
        ],
    }
    assert event["occurred_at"] == "2026-11-30T10:15:00-05:00"
    assert routed(event).key == "450789469"


def test_the_same_shopify_webhook_gives_the_same_ids_and_another_webhook_other_ids():
    first = shopify_events("orders/create", "w-1", SHOP, shopify_order(), CONFIG).events
    again = shopify_events("orders/create", "w-1", SHOP, shopify_order(), CONFIG).events
    other = shopify_events("orders/create", "w-2", SHOP, shopify_order(), CONFIG).events
    assert first == again
    assert first[0]["event_id"] != other[0]["event_id"]


def test_a_pos_order_takes_its_mapped_location():
    order = shopify_order() | {"location_id": 655441491}
    (event,) = shopify_events("orders/create", "w-1", SHOP, order, CONFIG).events
    assert event["data"]["location"] == "UK"


def test_a_cancelled_shopify_order_cancels_the_whole_order():
    (event,) = shopify_events(
        "orders/cancelled", "w-3", SHOP, shopify_order(cancelled=True), CONFIG
    ).events
    assert valid(event)
    assert event["type"] == "order.cancelled"
    assert event["data"] == {"order_id": "450789469"}
    assert event["occurred_at"] == "2026-11-30T12:00:00-05:00"


def test_a_fulfillment_ships_its_lines_from_its_location():
    (event,) = shopify_events(
        "fulfillments/create", "w-4", SHOP, shopify_fulfillment(), CONFIG
    ).events
    assert valid(event)
    assert event["type"] == "order.fulfilled"
    assert event["data"]["location"] == "UK"
    assert event["data"]["lines"] == [{"line_id": "466157049", "sku": "IPOD2008GREEN", "qty": 2}]


def test_a_refund_returns_only_the_restocked_lines_in_the_configured_condition():
    (event,) = shopify_events("refunds/create", "w-5", SHOP, shopify_refund(), CONFIG).events
    assert valid(event)
    assert event["type"] == "scan.returned"
    assert event["data"] == {
        "sku": "IPOD2008GREEN",
        "location": "UK",
        "qty": 1,
        "order_id": "450789469",
        "condition": "inspect",
    }
    assert routed(event).key == "UK|IPOD2008GREEN"


def test_a_refund_delivered_under_another_webhook_id_returns_its_units_once():
    first = shopify_events("refunds/create", "w-5", SHOP, shopify_refund(), CONFIG).events
    again = shopify_events("refunds/create", "w-9", SHOP, shopify_refund(), CONFIG).events
    assert first == again


def test_a_refund_restocked_as_cancelled_cancels_those_lines():
    refund = shopify_refund()
    refund["refund_line_items"][0]["restock_type"] = "cancel"
    (event,) = shopify_events("refunds/create", "w-6", SHOP, refund, CONFIG).events
    assert valid(event)
    assert event["data"] == {"order_id": "450789469", "lines": [{"line_id": "466157049"}]}


def test_an_unhandled_shopify_topic_maps_to_nothing():
    mapped = shopify_events("products/update", "w-7", SHOP, {"id": 1}, CONFIG)
    assert not mapped.handled
    assert mapped.events == []


def test_woocommerce_ids_come_from_the_order_not_the_delivery():
    placed = woocommerce_events("order.created", "https://s/", woo_order(), "main")
    (event,) = placed.events
    assert valid(event)
    assert placed.skipped_lines == 1
    assert event["data"]["lines"] == [{"line_id": "315", "sku": "WOO-SINGLE-1", "qty": 2}]
    assert event["occurred_at"].startswith("2026-11-30T15:19:21")
    other_order = woocommerce_events("order.created", "https://s/", woo_order(728), "main")
    assert other_order.events[0]["event_id"] != event["event_id"]


def test_woocommerce_updates_cancel_or_fulfil_by_status_and_ignore_the_rest():
    (cancelled,) = woocommerce_events(
        "order.updated", "s", woo_order(status="cancelled"), "main"
    ).events
    assert cancelled["type"] == "order.cancelled"
    (completed,) = woocommerce_events(
        "order.updated", "s", woo_order(status="completed"), "main"
    ).events
    assert completed["type"] == "order.fulfilled"
    assert valid(cancelled)
    assert valid(completed)
    assert not woocommerce_events("order.updated", "s", woo_order(status="on-hold"), "m").handled


def test_inbound_signatures_are_the_base64_hmac_of_the_raw_body():
    body = b'{"id": 1}'
    assert body_signed(body, signature(body, "k"), "k")
    assert not body_signed(body + b" ", signature(body, "k"), "k")
    assert not body_signed(body, signature(body, "other"), "k")
    assert not body_signed(body, None, "k")
    assert not body_signed(body, "", "k")


def test_outbound_signatures_match_the_standard_webhooks_published_vector():
    at = datetime.fromtimestamp(1614265330, UTC)
    headers = standard_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        at,
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert headers["webhook-timestamp"] == "1614265330"


def test_a_forged_outbound_signature_is_detected():
    secret = new_secret()
    body = b'{"type": "replenishment.requested"}'
    headers = standard_headers(secret, "m1", body, datetime.now(UTC))
    Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"requested", b"cancelled"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_endpoint_secrets_follow_the_spec():
    assert secret_problem(new_secret()) is None
    assert secret_problem("plain") is not None
    assert secret_problem("whsec_c2hvcnQ=") is not None  # 5 bytes


REQUEST = {
    "event_id": "6a3b0f8e-0000-5000-8000-000000000001",
    "type": "replenishment.requested",
    "schema_version": 1,
    "occurred_at": "2026-12-01T00:00:00Z",
    "data": {"request_id": "r1", "sku": "S", "location": "UK", "qty": 5, "kind": "purchase"},
}


def test_endpoints_get_the_types_and_locations_they_asked_for():
    message = message_of("replenishment.requests.v1", REQUEST)
    assert message is not None
    assert message.id == REQUEST["event_id"]
    assert message.key == "UK|S"
    assert orjson.loads(message.body)["data"] == REQUEST["data"]
    every = Endpoint("a", "http://x", "s", None, frozenset({"replenishment.requested"}))
    uk_levels = Endpoint(
        "b", "http://x", "s", frozenset({"UK"}), frozenset({"stock.level.changed"})
    )
    fr = Endpoint("c", "http://x", "s", frozenset({"FR"}), frozenset({"replenishment.requested"}))
    assert [wants(e, message) for e in (every, uk_levels, fr)] == [True, False, False]
    level = message_of("stock.levels.v1", {"sku": "S", "location": "UK", "position": 9})
    assert level is not None
    assert wants(uk_levels, level)


def test_a_record_without_the_fields_of_its_type_is_not_delivered():
    broken = REQUEST | {"data": {"request_id": "r1"}}
    assert message_of("replenishment.requests.v1", broken) is None
    assert message_of("replenishment.requests.v1", [1]) is None
    assert message_of("stock.levels.v1", {"sku": "S", "position": 1}) is None


def test_retry_waits_double_with_jitter_up_to_the_ceiling():
    rng = random.Random(1)
    waits = [retry_delay(n, 5, 3600, rng) for n in range(1, 15)]
    for n, wait in enumerate(waits, start=1):
        ceiling = min(5 * 2 ** (n - 1), 3600)
        assert ceiling / 2 <= wait <= ceiling
    assert verdict(204) == "delivered"
    assert verdict(410) == "gone"
    assert [verdict(s) for s in (301, 429, 500, 503)] == ["retry"] * 4


def test_during_a_rotation_either_shop_secret_is_accepted():
    body = b'{"id": 1}'
    both = secrets_of("old-secret, new-secret")
    assert both == ["old-secret", "new-secret"]
    assert signed_by_any(body, signature(body, "old-secret"), both)
    assert signed_by_any(body, signature(body, "new-secret"), both)
    assert not signed_by_any(body, signature(body, "other"), both)
    assert not signed_by_any(body, signature(body, ""), secrets_of(" , "))


def test_event_ids_are_the_uuid5_of_their_parts() -> None:
    """Ids are dedupe keys already in the ledger: the fast derivation must give uuid5's."""
    rng = random.Random(5)
    alphabet = "abcXYZ019-/_.:|\x1f é€𝄞"
    for _ in range(2_000):
        parts = [
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
            if rng.random() < 0.7
            else rng.randrange(-(10**15), 10**15)
            for _ in range(rng.randrange(0, 6))
        ]
        expected = str(uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts)))
        assert event_id(*parts) == expected
    assert event_id("shopify", "shop", "w-1", "order.placed") == str(
        uuid.uuid5(NAMESPACE, "shopify\x1fshop\x1fw-1\x1forder.placed")
    )
