"""A batch of accepted events folded into ledger entries, and the keys a batch must lock.

Pure: no I/O. The storage adapters load the state named by :func:`order_and_reference_keys`
and :func:`item_keys`, lock it, and call :func:`fold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.events.codec import InputEvent
from shared.events.orders import OrderCancelled, OrderFulfilled, OrderPlaced
from shared.events.replenishment import ReplenishmentCancelled, ReplenishmentConfirmed
from shared.events.scans import (
    ScanAdjusted,
    ScanCounted,
    ScanMoved,
    ScanReceived,
    ScanReturned,
    ScanShipped,
    ScanTransferred,
)

from .rules import Entry, apply_event
from .state import ItemKey, LedgerState


def order_and_reference_keys(events: Iterable[InputEvent]) -> tuple[set[str], set[str]]:
    """The orders and inbound references (requests, transfers) the events read or change."""
    orders: set[str] = set()
    references: set[str] = set()
    for e in events:
        if isinstance(e, OrderPlaced | OrderCancelled | OrderFulfilled | ScanShipped):
            orders.add(e.data.order_id)
        elif isinstance(e, ScanReceived):
            if e.data.reference is not None:
                references.add(e.data.reference)
        elif isinstance(e, ScanTransferred):
            references.add(e.data.transfer_id)
        elif isinstance(e, ReplenishmentConfirmed | ReplenishmentCancelled):
            references.add(e.data.request_id)
    return orders, references


def item_keys(events: Iterable[InputEvent], state: LedgerState) -> set[ItemKey]:
    """Every item whose balance the events may change, given the loaded orders and references."""
    keys: set[ItemKey] = set()
    for e in events:
        if isinstance(
            e, ScanReceived | ScanShipped | ScanAdjusted | ScanCounted | ScanReturned | ScanMoved
        ):
            keys.add((e.data.sku, e.data.location))
        elif isinstance(e, ScanTransferred):
            keys.update(((e.data.sku, e.data.from_location), (e.data.sku, e.data.to_location)))
        elif isinstance(e, OrderPlaced | OrderFulfilled):
            keys.update((line.sku, e.data.location) for line in e.data.lines)
        elif isinstance(e, ReplenishmentConfirmed):
            keys.add((e.data.sku, e.data.location))
    for order in state.orders.values():
        keys.update(
            (line.sku, line.location)
            for line in order.lines.values()
            if line.sku is not None and line.location is not None
        )
    for inbound in state.inbound.values():
        keys.update(inbound.items)
    return keys


def fold(state: LedgerState, events: Sequence[InputEvent]) -> list[Entry]:
    """Apply the events in order; the entries of all of them, in the same order."""
    entries: list[Entry] = []
    for event in events:
        entries.extend(apply_event(state, event))
    return entries
