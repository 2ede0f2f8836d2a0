"""A part of the catalogue: the same history kept for only some of its skus.

A policy's figures on one order history may owe something to that history's items. Splitting
the catalogue into disjoint parts by a stable hash of the sku gives as many histories as there
are parts, each a brand of its own with the same calendar, and a result can be checked on each
(``python -m simulation --frontier --sku-part 0/2``, then ``1/2``).

Pure: no I/O. Every event that names a sku is kept only if its sku is in the part; an order
keeps only its lines in the part (and is dropped if none is); a cancellation of some lines keeps
only those of lines kept; a cancellation of a whole order is kept if the order was.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any


def parse_part(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N): the K-th of N disjoint parts, 0 ≤ K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"a part is K/N, e.g. 0/2, not {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"a part K/N needs 0 <= K < N, not {text!r}")
    return k, n


def in_part(sku: str, part: tuple[int, int]) -> bool:
    """Whether the sku is in the part: CRC-32 of the sku, modulo the number of parts (stable
    across runs and machines, unlike Python's ``hash``)."""
    k, n = part
    return zlib.crc32(sku.encode()) % n == k


def sku_part(events: Iterable[dict[str, Any]], part: tuple[int, int]) -> Iterator[dict[str, Any]]:
    """The events of the skus in ``part``, in the same order (see the module's docstring)."""
    kept_lines: set[tuple[str, str]] = set()  # (order id, line id) of lines kept
    kept_orders: set[str] = set()
    for event in events:
        data = event["data"]
        kind = event["type"]
        if kind == "order.placed":
            lines = [line for line in data["lines"] if in_part(line["sku"], part)]
            if not lines:
                continue
            kept_orders.add(data["order_id"])
            kept_lines.update((data["order_id"], line["line_id"]) for line in lines)
            yield event if len(lines) == len(data["lines"]) else _with(event, lines=lines)
        elif kind == "order.cancelled":
            if data["order_id"] not in kept_orders:
                continue
            if data.get("lines") is None:
                yield event
                continue
            lines = [
                line for line in data["lines"] if (data["order_id"], line["line_id"]) in kept_lines
            ]
            if lines:
                yield event if len(lines) == len(data["lines"]) else _with(event, lines=lines)
        elif "sku" in data:
            if in_part(data["sku"], part):
                yield event
        else:
            yield event


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], **changes}}
