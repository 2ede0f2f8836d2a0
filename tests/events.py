"""Builders of contract events for tests: plain dicts, as a producer would send them."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shared.events.codec import InputEvent, Rejection, decode

_clock = itertools.count()
BASE_TIME = datetime(2011, 7, 1, 8, 0, tzinfo=UTC)


def envelope(kind: str, data: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    at = BASE_TIME + timedelta(minutes=next(_clock))
    event = {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "source": "tests",
        "data": data,
    }
    event.update(overrides)
    return event


def parse(event: dict[str, Any]) -> InputEvent:
    decoded = decode(orjson.dumps(event))
    assert not isinstance(decoded, Rejection), decoded
    return decoded


def received(
    sku: str, location: str, qty: int, reference: str | None = None, **kw: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "location": location, "qty": qty}
    if reference is not None:
        data["reference"] = reference
    return envelope("scan.received", data, **kw)


def shipped(
    sku: str, location: str, qty: int, order_id: str, line_id: str | None = None, **kw: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "location": location, "qty": qty, "order_id": order_id}
    if line_id is not None:
        data["line_id"] = line_id
    return envelope("scan.shipped", data, **kw)


def adjusted(sku: str, location: str, qty: int, reason: str, **kw: Any) -> dict[str, Any]:
    return envelope(
        "scan.adjusted", {"sku": sku, "location": location, "qty": qty, "reason": reason}, **kw
    )


def counted(sku: str, location: str, counted_qty: int, **kw: Any) -> dict[str, Any]:
    return envelope(
        "scan.counted", {"sku": sku, "location": location, "counted_qty": counted_qty}, **kw
    )


def transferred(
    sku: str, from_location: str, to_location: str, qty: int, transfer_id: str, **kw: Any
) -> dict[str, Any]:
    data = {
        "sku": sku,
        "from_location": from_location,
        "to_location": to_location,
        "qty": qty,
        "transfer_id": transfer_id,
    }
    return envelope("scan.transferred", data, **kw)


def returned(
    sku: str, location: str, qty: int, condition: str, order_id: str | None = None, **kw: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "location": location, "qty": qty, "condition": condition}
    if order_id is not None:
        data["order_id"] = order_id
    return envelope("scan.returned", data, **kw)


def moved(
    sku: str, location: str, qty: int, from_bin: str, to_bin: str, **kw: Any
) -> dict[str, Any]:
    data = {"sku": sku, "location": location, "qty": qty, "from_bin": from_bin, "to_bin": to_bin}
    return envelope("scan.moved", data, **kw)


def placed(
    order_id: str, location: str, lines: list[tuple[str, str, int]], **kw: Any
) -> dict[str, Any]:
    data = {
        "order_id": order_id,
        "location": location,
        "lines": [{"line_id": lid, "sku": sku, "qty": qty} for lid, sku, qty in lines],
    }
    return envelope("order.placed", data, **kw)


def fulfilled(
    order_id: str, location: str, lines: list[tuple[str, str, int]], **kw: Any
) -> dict[str, Any]:
    event = placed(order_id, location, lines, **kw)
    event["type"] = "order.fulfilled"
    return event


def cancelled(order_id: str, line_ids: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"order_id": order_id}
    if line_ids is not None:
        data["lines"] = [{"line_id": lid} for lid in line_ids]
    return envelope("order.cancelled", data, **kw)


def confirmed(request_id: str, sku: str, location: str, qty: int, **kw: Any) -> dict[str, Any]:
    data = {"request_id": request_id, "sku": sku, "location": location, "qty": qty}
    return envelope("replenishment.confirmed", data, **kw)


def request_cancelled(request_id: str, **kw: Any) -> dict[str, Any]:
    return envelope("replenishment.cancelled", {"request_id": request_id}, **kw)


def inspected(sku: str, location: str, qty: int, outcome: str, **kw: Any) -> dict[str, Any]:
    data = {"sku": sku, "location": location, "qty": qty, "outcome": outcome}
    return envelope("scan.inspected", data, **kw)
