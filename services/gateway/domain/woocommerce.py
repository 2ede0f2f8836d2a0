"""WooCommerce webhooks to contract events. Pure: no I/O.

The caller supplies the verified payload (a REST v3 order), the ``X-WC-Webhook-Topic`` and
``X-WC-Webhook-Source`` headers and the location (WooCommerce has one per store).

``X-WC-Webhook-Delivery-ID`` is not a dedupe key: WooCommerce derives it from the webhook id and
the current second, so two orders delivered by one webhook in the same second share it. Ids here
derive from the store, the order id and what happened to it (placed, cancelled, completed),
which stay the same however often, and through however many webhooks, the order is delivered.

- ``order.created`` → ``order.placed`` (lines: ``line_items[].id``, ``sku``, ``quantity``)
- ``order.updated`` with status ``cancelled`` → ``order.cancelled`` (the whole order)
- ``order.updated`` with status ``completed`` → ``order.fulfilled`` (every line)
- any other status or topic: nothing
"""

from __future__ import annotations

from typing import Any

from .events import envelope, event_id, now, rfc3339
from .shopify import Mapped, order_lines

TOPICS = ("order.created", "order.updated")


def woocommerce_events(topic: str, store: str, payload: Any, location: str) -> Mapped:
    """The contract events of one verified WooCommerce webhook."""
    if topic not in TOPICS or not isinstance(payload, dict) or "id" not in payload:
        return Mapped([], handled=False)
    order_id = str(payload["id"])
    source = f"woocommerce/{store}" if store else "woocommerce"
    status = payload.get("status")
    modified = rfc3339(payload.get("date_modified_gmt"), now())

    def ident(what: str) -> str:
        return event_id("woocommerce", store, order_id, what)

    if topic == "order.created":
        lines, skipped = order_lines(payload.get("line_items"))
        if not lines:
            return Mapped([], skipped)
        at = rfc3339(payload.get("date_created_gmt"), modified)
        data = {"order_id": order_id, "location": location, "lines": lines}
        return Mapped([envelope(ident("placed"), "order.placed", at, source, data)], skipped)
    if status == "cancelled":
        data = {"order_id": order_id}
        return Mapped([envelope(ident("cancelled"), "order.cancelled", modified, source, data)])
    if status == "completed":
        lines, skipped = order_lines(payload.get("line_items"))
        if not lines:
            return Mapped([], skipped)
        at = rfc3339(payload.get("date_completed_gmt"), modified)
        data = {"order_id": order_id, "location": location, "lines": lines}
        return Mapped([envelope(ident("completed"), "order.fulfilled", at, source, data)], skipped)
    return Mapped([], handled=False)
