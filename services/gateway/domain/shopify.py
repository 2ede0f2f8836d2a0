"""Shopify webhooks to contract events. Pure: no I/O.

The caller supplies the verified payload (parsed JSON), the topic and webhook id headers, the
shop's domain and a :class:`ShopifyConfig`. Each event's id derives from the shop and the
``X-Shopify-Webhook-Id``: a retried or duplicated delivery gives the same ids, so it has one
effect (and the ledger places, cancels and ships an order line once whatever the id). Returns
derive theirs from the refund's and the refund line's ids instead (see :func:`_return_id`).

Mapping (REST resource payloads, as Shopify documents them):

- ``orders/create`` → ``order.placed`` (lines: ``line_items[].id``, ``sku``, ``quantity``)
- ``orders/cancelled`` → ``order.cancelled`` (the whole order)
- ``fulfillments/create`` → ``order.fulfilled`` for the fulfilment's lines, at its location
- ``refunds/create``: refund lines restocked as returned (``restock_type`` ``return`` or
  ``legacy_restock``) → ``scan.returned`` each, in the configured condition; lines restocked as
  cancelled (``restock_type`` ``cancel``: never shipped) → ``order.cancelled`` for those lines.

Lines without a SKU (custom items, tips) are left out and counted, not dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import envelope, event_id, now, rfc3339

TOPICS = ("orders/create", "orders/cancelled", "fulfillments/create", "refunds/create")
RETURNED_RESTOCKS = ("return", "legacy_restock")


@dataclass(frozen=True, slots=True)
class ShopifyConfig:
    locations: Mapping[str, str] = field(default_factory=dict)
    default_location: str = "main"
    return_condition: str = "inspect"

    def location(self, location_id: object) -> str:
        if location_id is None:
            return self.default_location
        return self.locations.get(str(location_id), self.default_location)


@dataclass(frozen=True, slots=True)
class Mapped:
    """What a webhook becomes: events, lines left out for want of a SKU, whether it was a topic
    the gateway handles."""

    events: list[dict[str, Any]]
    skipped_lines: int = 0
    handled: bool = True


def _sku(item: Mapping[str, Any]) -> str | None:
    sku = item.get("sku")
    return sku if isinstance(sku, str) and sku.strip() else None


def order_lines(items: object) -> tuple[list[dict[str, Any]], int]:
    """Order lines of ``line_items`` with a SKU and a positive quantity; and how many had none."""
    lines, skipped = [], 0
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            skipped += 1
            continue
        sku, qty = _sku(item), item.get("quantity")
        if sku is None or not isinstance(qty, int) or qty <= 0:
            skipped += 1
            continue
        lines.append({"line_id": str(item.get("id")), "sku": sku, "qty": qty})
    return lines, skipped


def shopify_events(
    topic: str, webhook_id: str, shop: str, payload: Any, config: ShopifyConfig
) -> Mapped:
    """The contract events of one verified Shopify webhook."""
    if topic not in TOPICS or not isinstance(payload, dict):
        return Mapped([], handled=False)
    source = f"shopify/{shop}" if shop else "shopify"

    def ident(*parts: object) -> str:
        return event_id("shopify", shop, webhook_id, *parts)

    if topic == "orders/create":
        lines, skipped = order_lines(payload.get("line_items"))
        if not lines:
            return Mapped([], skipped)
        data = {
            "order_id": str(payload.get("id")),
            "location": config.location(payload.get("location_id")),
            "lines": lines,
        }
        at = rfc3339(payload.get("created_at"), now)
        return Mapped([envelope(ident("order.placed"), "order.placed", at, source, data)], skipped)

    if topic == "orders/cancelled":
        at = rfc3339(payload.get("cancelled_at"), rfc3339(payload.get("updated_at"), now()))
        data = {"order_id": str(payload.get("id"))}
        return Mapped([envelope(ident("order.cancelled"), "order.cancelled", at, source, data)])

    if topic == "fulfillments/create":
        lines, skipped = order_lines(payload.get("line_items"))
        if not lines:
            return Mapped([], skipped)
        data = {
            "order_id": str(payload.get("order_id")),
            "location": config.location(payload.get("location_id")),
            "lines": lines,
        }
        at = rfc3339(payload.get("created_at"), now)
        kind = "order.fulfilled"
        return Mapped([envelope(ident(kind), kind, at, source, data)], skipped)

    return _refund(payload, config, shop, source, ident)


def _refund(
    payload: dict[str, Any], config: ShopifyConfig, shop: str, source: str, ident: Any
) -> Mapped:
    order_id = str(payload.get("order_id"))
    at = rfc3339(payload.get("processed_at"), rfc3339(payload.get("created_at"), now()))
    events: list[dict[str, Any]] = []
    cancelled: list[dict[str, str]] = []
    skipped = 0
    items = payload.get("refund_line_items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        restock = item.get("restock_type")
        if restock == "cancel":
            cancelled.append({"line_id": str(item.get("line_item_id"))})
            continue
        if restock not in RETURNED_RESTOCKS:
            continue  # refunded without restocking: no stock moves
        line_item = item.get("line_item") if isinstance(item.get("line_item"), dict) else {}
        sku, qty = _sku(line_item or {}), item.get("quantity")
        if sku is None or not isinstance(qty, int) or qty <= 0:
            skipped += 1
            continue
        data = {
            "sku": sku,
            "location": config.location(item.get("location_id")),
            "qty": qty,
            "order_id": order_id,
            "condition": config.return_condition,
        }
        events.append(
            envelope(_return_id(shop, payload, item, ident), "scan.returned", at, source, data)
        )
    if cancelled:
        unique = list({c["line_id"]: c for c in cancelled}.values())
        data = {"order_id": order_id, "lines": unique}
        events.append(envelope(ident("order.cancelled"), "order.cancelled", at, source, data))
    return Mapped(events, skipped)


def _return_id(shop: str, refund: dict[str, Any], item: dict[str, Any], ident: Any) -> str:
    """A returned line's id: from the refund's and the refund line's own ids, which every
    delivery of the refund carries (retries and other subscriptions alike): a return, unlike a
    placement, a cancellation or a fulfilment, is not idempotent by order line in the ledger, so
    it must not count twice should Shopify deliver it under another webhook id. The webhook id
    stands in for ids the payload lacks."""
    refund_id, line_id = refund.get("id"), item.get("id")
    if refund_id is None or line_id is None:
        return str(ident("scan.returned", line_id))
    return event_id("shopify", shop, "refund", refund_id, line_id)
