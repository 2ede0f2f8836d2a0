"""Synthetic but realistic input for benchmarks: order lines and scans over a few thousand items."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import orjson

from shared.topics import ORDERS, SCANS

LOCATIONS = ("UK", "EU", "ROW")
START = datetime(2011, 1, 1, tzinfo=UTC)


def input_messages(
    count: int,
    seed: int = 1,
    skus: int = 3000,
    start: datetime = START,
    per_second: int = 1,
) -> Iterator[tuple[str, bytes, bytes]]:
    """``count`` (topic, key, value) messages: 55% orders placed (1-4 lines), 25% shipments,
    12% receipts, 8% adjustments; items drawn with a long tail, as sales are. They occur from
    ``start``, ``per_second`` events to a second of event time (one a second by default; sent
    at that rate, event time then runs as a wall clock does in live operation)."""
    rng = random.Random(seed)
    codes = [f"SKU-{i:05d}" for i in range(skus)]
    # cumulative weights once: random.choices would otherwise sum the 3,000 weights per draw
    # (the same draws either way)
    cum = list(accumulate(1 / (i + 1) ** 0.8 for i in range(skus)))
    open_orders: list[tuple[str, str, str, str, int]] = []
    for n in range(count):
        moment = start + timedelta(microseconds=n * 1_000_000 // per_second)
        at = moment.isoformat().replace("+00:00", "Z")
        roll = rng.random()
        location = rng.choice(LOCATIONS)
        sku = rng.choices(codes, cum_weights=cum)[0]
        data: dict[str, Any]
        if roll < 0.55 or not open_orders:
            order_id = f"O{seed}-{n}"
            lines: list[dict[str, Any]] = [
                {
                    "line_id": str(i + 1),
                    "sku": rng.choices(codes, cum_weights=cum)[0],
                    "qty": rng.randint(1, 12),
                }
                for i in range(rng.randint(1, 4))
            ]
            open_orders.extend(
                (order_id, ln["line_id"], ln["sku"], location, ln["qty"]) for ln in lines
            )
            topic, key = ORDERS, order_id
            kind, data = (
                "order.placed",
                {"order_id": order_id, "location": location, "lines": lines},
            )
        elif roll < 0.80:
            order_id, line_id, sku, location, qty = open_orders.pop(rng.randrange(len(open_orders)))
            topic, key, kind = SCANS, f"{location}|{sku}", "scan.shipped"
            data = {
                "sku": sku,
                "location": location,
                "qty": qty,
                "order_id": order_id,
                "line_id": line_id,
            }
        elif roll < 0.92:
            topic, key, kind = SCANS, f"{location}|{sku}", "scan.received"
            data = {"sku": sku, "location": location, "qty": rng.randint(10, 200)}
        else:
            topic, key, kind = SCANS, f"{location}|{sku}", "scan.adjusted"
            data = {
                "sku": sku,
                "location": location,
                "qty": rng.randint(1, 3),
                "reason": rng.choice(["lost", "damaged", "found"]),
            }
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": kind,
            "schema_version": 1,
            "occurred_at": at,
            "source": "bench",
            "data": data,
        }
        yield topic, key.encode(), orjson.dumps(event)
