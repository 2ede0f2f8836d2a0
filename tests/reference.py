"""An independent reference for the ledger: final stock computed from the set of events at once.

Written apart from the service's rules, in another shape (totals over facts, not a fold), for the
event kinds whose outcome does not depend on arrival order: counts by their time (on_hand is the
latest count plus what moved after it, a line's units moving at their first report by either
channel), write-offs and damage netted, unlined shipments as the scans of their order's one line
for the sku. Inspections do depend on arrival order (one that
finds too little in quality control is refused): the ledger's refusals are given, and the
reference takes the others. Property tests compare the two.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import datetime
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
    "scan.counted",
    "scan.inspected",
    "order.placed",
    "order.cancelled",
    "order.fulfilled",
    "replenishment.confirmed",
    "replenishment.cancelled",
}


def reference_balances(
    events: list[dict[str, Any]], refused: Collection[str] = ()
) -> dict[Item, dict[str, int]]:
    """The stock the events leave, those whose ids are in ``refused`` left out."""
    seen: set[str] = set(refused)
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
    adjust_sign = {"found": 1, "correction": 1, "lost": -1, "expired": -1, "write_off": -1}
    damaged_in: Counter[Item] = Counter()  # units reported damaged
    written_off: Counter[Item] = Counter()  # damaged units written off
    moves: dict[Item, list[tuple[datetime, int]]] = defaultdict(list)  # on_hand, but shipments
    counts: dict[Item, list[tuple[datetime, int]]] = defaultdict(list)
    reports: dict[tuple[str, str], list[tuple[datetime, int, int]]] = defaultdict(list)

    def shipped_by(line: tuple[str, str], until: datetime | None = None) -> int:
        """A line's units shipped by a time: each unit leaves at its first report, by either
        channel (scans and fulfilments describe the same units)."""
        by_channel = [0, 0]
        for at, qty, channel in reports[line]:
            if until is None or at <= until:
                by_channel[channel] += qty
        return max(by_channel)

    def moved(e: dict[str, Any], item: Item, qty: int) -> None:
        totals[item]["on_hand"] += qty
        moves[item].append((datetime.fromisoformat(e["occurred_at"]), qty))

    for e in unique:
        d, kind = e["data"], e["type"]
        if kind == "scan.received":
            item = (d["sku"], d["location"])
            moved(e, item, d["qty"])
            if "reference" in d:
                received_on[(d["reference"], item)] += d["qty"]
        elif kind == "scan.shipped":
            # without a line id: the scan of the order's one line for the sku, "1" here
            line = (d["order_id"], d.get("line_id", "1"))
            scanned[line] += d["qty"]
            ship_item[line] = (d["sku"], d["location"])
            reports[line].append((datetime.fromisoformat(e["occurred_at"]), d["qty"], 0))
        elif kind == "order.fulfilled":
            for ln in d["lines"]:
                line = (d["order_id"], ln["line_id"])
                fulfilled[line] += ln["qty"]
                ship_item[line] = (ln["sku"], d["location"])
                reports[line].append((datetime.fromisoformat(e["occurred_at"]), ln["qty"], 1))
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
                damaged_in[item] += d["qty"]
            else:
                moved(e, item, adjust_sign[d["reason"]] * d["qty"])
            if d["reason"] == "write_off":
                written_off[item] += d["qty"]
        elif kind == "scan.counted":
            item = (d["sku"], d["location"])
            counts[item].append((datetime.fromisoformat(e["occurred_at"]), d["counted_qty"]))
        elif kind == "scan.inspected":
            item = (d["sku"], d["location"])
            totals[item]["quality_control"] -= d["qty"]
            if d["outcome"] == "damaged":
                damaged_in[item] += d["qty"]
        elif kind == "scan.transferred":
            totals[(d["sku"], d["from_location"])]["on_hand"] -= d["qty"]
            # each scan under a transfer id sends more units: they add up
            sent = (d["transfer_id"], (d["sku"], d["to_location"]))
            expected[sent] = expected.get(sent, 0) + d["qty"]
        elif kind == "scan.returned":
            item = (d["sku"], d["location"])
            moved(e, item, d["qty"])
            if d["condition"] == "damaged":
                damaged_in[item] += d["qty"]
            elif d["condition"] == "inspect":
                totals[item]["quality_control"] += d["qty"]
        elif kind == "replenishment.confirmed":
            expected[(d["request_id"], (d["sku"], d["location"]))] = d["qty"]
        elif kind == "replenishment.cancelled":
            cancelled_refs.add(d["request_id"])

    for item in set(damaged_in) | set(written_off):
        # a write-off takes damaged units, those reported before it or after
        totals[item]["damaged"] += max(0, damaged_in[item] - written_off[item])
    lines = set(scanned) | set(fulfilled)
    for line in lines:
        totals[ship_item[line]]["on_hand"] -= shipped_by(line)
    for item, counted in counts.items():
        # the latest count, and what moved after it
        at, qty = max(counted)
        later = sum(n for t, n in moves[item] if t > at)
        later -= sum(shipped_by(ln) - shipped_by(ln, at) for ln in lines if ship_item[ln] == item)
        totals[item]["on_hand"] = qty + later
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


SKUS = 3
LOCATIONS = ["UK", "EU"]
REQUESTS = 3


def request_items(tag: str = "") -> dict[str, Item]:
    """The item each request of :func:`random_history` is for (the replenisher's records)."""
    skus = [f"{tag}SKU-{i}" for i in range(SKUS)]
    return {
        ref: (_pick(skus, ref), _pick(LOCATIONS, ref + "l"))
        for ref in (f"{tag}R{n}" for n in range(1, REQUESTS + 1))
    }


def random_history(
    rng: random.Random, size: int, tag: str = "", *, extended: bool = False
) -> list[dict[str, Any]]:
    """Events of the order-independent kinds over a few items, orders and references, each with
    its own event id, in the order they happened (callers shuffle and duplicate them).
    ``extended`` adds write-offs, shipments without a line id, counts of an item of their own
    (with its orders, scanned and fulfilled) and inspections, some of which the ledger refuses
    (see :func:`reference_balances`)."""
    skus = [f"{tag}SKU-{i}" for i in range(SKUS)]
    locations = LOCATIONS
    out: list[dict[str, Any]] = []
    for _ in range(size):
        if extended and rng.random() < 0.3:
            out.append(_extended_event(rng, tag, skus))
            continue
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
        ref = f"{tag}R{rng.randint(1, REQUESTS)}"
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


def _extended_event(rng: random.Random, tag: str, skus: list[str]) -> dict[str, Any]:
    sku, loc = rng.choice(skus), rng.choice(LOCATIONS)
    qty = rng.randint(1, 9)
    roll = rng.random()
    counted = f"{tag}COUNTED"
    order_id = f"{tag}U{rng.randint(1, 3)}"  # orders of one line, "1", shipped without line ids
    u_sku, u_loc, u_qty = _pick(skus, order_id), _pick(LOCATIONS, order_id), _fixed_qty(order_id)
    if roll < 0.12:
        return ev.adjusted(sku, loc, qty, "write_off")
    if roll < 0.22:
        return ev.placed(order_id, u_loc, [("1", u_sku, u_qty)])
    if roll < 0.34:
        return ev.shipped(u_sku, u_loc, rng.randint(1, 3), order_id)
    if roll < 0.40:
        return ev.fulfilled(order_id, u_loc, [("1", u_sku, rng.randint(1, 3))])
    if roll < 0.43:
        return ev.cancelled(order_id)
    if roll < 0.55:
        return ev.counted(counted, loc, rng.randint(0, 20))
    if roll < 0.63:  # orders of the counted item, reported by scan and by fulfilment
        c_order, c_line = f"{tag}C{rng.randint(1, 3)}", str(rng.randint(1, 2))
        c_loc, c_qty = _pick(LOCATIONS, c_order), _fixed_qty(c_order + c_line)
        return rng.choice(
            [
                ev.placed(c_order, c_loc, [(c_line, counted, c_qty)]),
                ev.shipped(counted, c_loc, rng.randint(1, 3), c_order, c_line),
                ev.fulfilled(c_order, c_loc, [(c_line, counted, rng.randint(1, 3))]),
            ]
        )
    if roll < 0.75:
        reason = rng.choice(["found", "lost", "damaged", "write_off", "correction"])
        signed = qty if reason != "correction" else rng.choice([qty, -qty])
        return rng.choice(
            [
                ev.received(counted, loc, qty),
                ev.adjusted(counted, loc, signed, reason),
                ev.returned(counted, loc, qty, rng.choice(["sellable", "damaged", "inspect"])),
            ]
        )
    # inspections of one item per location, which inspect returns fill: some find enough there
    inspected = rng.choice([skus[0], counted])
    if roll < 0.88:
        return ev.returned(inspected, loc, qty, "inspect")
    return ev.inspected(inspected, loc, rng.randint(1, 3), rng.choice(["sellable", "damaged"]))


def deliveries(rng: random.Random, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history as a broker might deliver it: shuffled, some events several times."""
    delivered = history + [rng.choice(history) for _ in range(len(history) // 3)] if history else []
    rng.shuffle(delivered)
    return delivered
