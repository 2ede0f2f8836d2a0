"""An independent reference for the ledger: final stock computed from the set of events at once.

Written apart from the service's rules, in another shape (totals over facts, not a fold), for the
event kinds whose outcome does not depend on arrival order. Property tests compare the two.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter, defaultdict
from typing import Any

from . import events as ev

Item = tuple[str, str]
ORDER_FREE_TYPES = {
    "scan.received",
    "scan.shipped",
    "scan.adjusted",
    "scan.transferred",
    "scan.returned",
    "scan.moved",
    "order.placed",
    "order.cancelled",
    "order.fulfilled",
    "replenishment.confirmed",
    "replenishment.cancelled",
}


def reference_balances(events: list[dict[str, Any]]) -> dict[Item, dict[str, int]]:
    seen: set[str] = set()
    unique = []
    for e in events:
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            unique.append(e)
    assert {e["type"] for e in unique} <= ORDER_FREE_TYPES

    totals: dict[Item, Counter[str]] = defaultdict(Counter)
    placed: dict[tuple[str, str], tuple[str, str, int]] = {}
    scanned: Counter[tuple[str, str]] = Counter()
    fulfilled: Counter[tuple[str, str]] = Counter()
    ship_item: dict[tuple[str, str], Item] = {}
    cancelled_orders: set[str] = set()
    cancelled_lines: set[tuple[str, str]] = set()
    expected: dict[tuple[str, Item], int] = {}
    received_on: Counter[tuple[str, Item]] = Counter()
    cancelled_refs: set[str] = set()
    adjust_sign = {"found": 1, "correction": 1, "lost": -1, "expired": -1}

    for e in unique:
        d, kind = e["data"], e["type"]
        if kind == "scan.received":
            item = (d["sku"], d["location"])
            totals[item]["on_hand"] += d["qty"]
            if "reference" in d:
                received_on[(d["reference"], item)] += d["qty"]
        elif kind == "scan.shipped":
            line = (d["order_id"], d["line_id"])
            scanned[line] += d["qty"]
            ship_item[line] = (d["sku"], d["location"])
        elif kind == "order.fulfilled":
            for ln in d["lines"]:
                line = (d["order_id"], ln["line_id"])
                fulfilled[line] += ln["qty"]
                ship_item[line] = (ln["sku"], d["location"])
        elif kind == "order.placed":
            for ln in d["lines"]:
                placed.setdefault(
                    (d["order_id"], ln["line_id"]), (ln["sku"], d["location"], ln["qty"])
                )
        elif kind == "order.cancelled":
            if "lines" in d:
                cancelled_lines.update((d["order_id"], ln["line_id"]) for ln in d["lines"])
            else:
                cancelled_orders.add(d["order_id"])
        elif kind == "scan.adjusted":
            item = (d["sku"], d["location"])
            if d["reason"] == "damaged":
                totals[item]["damaged"] += d["qty"]
            else:
                totals[item]["on_hand"] += adjust_sign[d["reason"]] * d["qty"]
        elif kind == "scan.transferred":
            totals[(d["sku"], d["from_location"])]["on_hand"] -= d["qty"]
            # each scan under a transfer id sends more units: they add up
            sent = (d["transfer_id"], (d["sku"], d["to_location"]))
            expected[sent] = expected.get(sent, 0) + d["qty"]
        elif kind == "scan.returned":
            item = (d["sku"], d["location"])
            totals[item]["on_hand"] += d["qty"]
            state = {"damaged": "damaged", "inspect": "quality_control"}.get(d["condition"])
            if state:
                totals[item][state] += d["qty"]
        elif kind == "replenishment.confirmed":
            expected[(d["request_id"], (d["sku"], d["location"]))] = d["qty"]
        elif kind == "replenishment.cancelled":
            cancelled_refs.add(d["request_id"])

    for line in set(scanned) | set(fulfilled):
        totals[ship_item[line]]["on_hand"] -= max(scanned[line], fulfilled[line])
    for line, (sku, location, qty) in placed.items():
        if line[0] not in cancelled_orders and line not in cancelled_lines:
            shipped = max(scanned[line], fulfilled[line])
            totals[(sku, location)]["committed"] += max(0, qty - shipped)
    for (ref, item), qty in expected.items():
        if ref not in cancelled_refs:
            totals[item]["incoming"] += max(0, qty - received_on[(ref, item)])
    return {k: {s: n for s, n in v.items() if n} for k, v in totals.items() if any(v.values())}


def _pick(options: list[str], key: str) -> str:
    return options[zlib.crc32(key.encode()) % len(options)]


def _fixed_qty(key: str) -> int:
    return 1 + zlib.crc32(key.encode()) % 9


def random_history(rng: random.Random, size: int, tag: str = "") -> list[dict[str, Any]]:
    """Events of the order-independent kinds over a few items, orders and references, each with
    its own event id, in the order they happened (callers shuffle and duplicate them)."""
    skus = [f"{tag}SKU-{i}" for i in range(3)]
    locations = ["UK", "EU"]
    out: list[dict[str, Any]] = []
    for _ in range(size):
        sku, loc = rng.choice(skus), rng.choice(locations)
        qty = rng.randint(1, 9)
        roll = rng.random()
        order_id = f"{tag}O{rng.randint(1, 6)}"
        line_id = str(rng.randint(1, 2))
        # an order line, a request and a transfer always carry the same facts, as real ones do
        # (a transfer may be sent in several scans, each with its own quantity):
        # only redeliveries and arrival order vary
        o_sku, o_loc = _pick(skus, order_id + line_id), _pick(locations, order_id)
        o_qty = _fixed_qty(order_id + line_id)
        ref = f"{tag}R{rng.randint(1, 3)}"
        r_sku, r_loc, r_qty = _pick(skus, ref), _pick(locations, ref + "l"), _fixed_qty(ref)
        transfer = f"{tag}T{rng.randint(1, 2)}"
        t_sku, t_to = _pick(skus, transfer), _pick(locations, transfer)
        if roll < 0.15:
            out.append(ev.received(sku, loc, qty))
        elif roll < 0.25:
            out.append(ev.received(r_sku, r_loc, qty, reference=ref))
        elif roll < 0.40:
            out.append(ev.placed(order_id, o_loc, [(line_id, o_sku, o_qty)]))
        elif roll < 0.50:
            out.append(ev.shipped(o_sku, o_loc, qty, order_id, line_id))
        elif roll < 0.57:
            out.append(ev.fulfilled(order_id, o_loc, [(line_id, o_sku, qty)]))
        elif roll < 0.62:
            lines = None if rng.random() < 0.5 else [line_id]
            out.append(ev.cancelled(order_id, lines))
        elif roll < 0.72:
            reason = rng.choice(["found", "lost", "expired", "damaged", "correction"])
            signed = qty if reason != "correction" else rng.choice([qty, -qty])
            out.append(ev.adjusted(sku, loc, signed, reason))
        elif roll < 0.77:
            t_from = "UK" if t_to == "EU" else "EU"
            if rng.random() < 0.5:
                out.append(ev.transferred(t_sku, t_from, t_to, qty, transfer))  # split: adds up
            else:
                out.append(ev.received(t_sku, t_to, qty, reference=transfer))
        elif roll < 0.84:
            condition = rng.choice(["sellable", "damaged", "inspect"])
            out.append(ev.returned(sku, loc, qty, condition))
        elif roll < 0.87:
            out.append(ev.moved(sku, loc, qty, "A1", "B2"))
        elif roll < 0.96:
            out.append(ev.confirmed(ref, r_sku, r_loc, r_qty))
        else:
            out.append(ev.request_cancelled(ref))
    return out


def deliveries(rng: random.Random, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history as a broker might deliver it: shuffled, some events several times."""
    delivered = history + [rng.choice(history) for _ in range(len(history) // 3)] if history else []
    rng.shuffle(delivered)
    return delivered
