"""A batch of accepted events folded into ledger entries, and the keys a batch must lock.

Pure: no I/O. The storage adapters load the state named by :func:`order_and_reference_keys`
and :func:`item_keys`, lock it, and call :func:`fold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol, cast

from shared.events.codec import InputEvent
from shared.events.orders import OrderCancelled, OrderFulfilled, OrderPlaced
from shared.events.replenishment import ReplenishmentCancelled, ReplenishmentConfirmed
from shared.events.scans import (
    ScanAdjusted,
    ScanCounted,
    ScanInspected,
    ScanMoved,
    ScanReceived,
    ScanReturned,
    ScanShipped,
    ScanTransferred,
)

from .rules import Entry, apply_event
from .state import ItemKey, LedgerState


class _OrderData(Protocol):
    @property
    def order_id(self) -> str: ...


class _HasOrder(Protocol):
    @property
    def data(self) -> _OrderData: ...


_ORDER_EVENTS = frozenset({OrderPlaced, OrderCancelled, OrderFulfilled, ScanShipped})
_ONE_ITEM_EVENTS = frozenset(
    {ScanReceived, ScanShipped, ScanAdjusted, ScanCounted, ScanReturned, ScanMoved, ScanInspected}
)
_ORDER_LINE_EVENTS = frozenset({OrderPlaced, OrderFulfilled})
_REQUEST_EVENTS = frozenset({ReplenishmentConfirmed, ReplenishmentCancelled})
# Dispatch on the exact type: isinstance() on pydantic models goes through ABCMeta, which costs.


def order_and_reference_keys(events: Iterable[InputEvent]) -> tuple[set[str], set[str]]:
    """The orders and inbound references (requests, transfers) the events read or change."""
    orders: set[str] = set()
    references: set[str] = set()
    for e in events:
        kind = type(e)
        if kind in _ORDER_EVENTS:
            orders.add(cast(_HasOrder, e).data.order_id)
        elif kind is ScanReceived:
            reference = cast(ScanReceived, e).data.reference
            if reference is not None:
                references.add(reference)
        elif kind is ScanTransferred:
            references.add(cast(ScanTransferred, e).data.transfer_id)
        elif kind in _REQUEST_EVENTS:
            references.add(cast(ReplenishmentConfirmed, e).data.request_id)
    return orders, references


def item_keys(events: Iterable[InputEvent], state: LedgerState) -> set[ItemKey]:
    """Every item whose balance the events may change, given the loaded orders and references."""
    keys: set[ItemKey] = set()
    for e in events:
        kind = type(e)
        if kind in _ONE_ITEM_EVENTS:
            data = cast(ScanReceived, e).data
            keys.add((data.sku, data.location))
        elif kind in _ORDER_LINE_EVENTS:
            placed = cast(OrderPlaced, e).data
            location = placed.location
            keys.update((line.sku, location) for line in placed.lines)
        elif kind is ScanTransferred:
            moved = cast(ScanTransferred, e).data
            keys.update(((moved.sku, moved.from_location), (moved.sku, moved.to_location)))
        elif kind is ReplenishmentConfirmed:
            confirmed = cast(ReplenishmentConfirmed, e).data
            keys.add((confirmed.sku, confirmed.location))
    for order in state.orders.values():
        keys.update(
            (line.sku, line.location)
            for line in order.lines.values()
            if line.sku is not None and line.location is not None
        )
    for inbound in state.inbound.values():
        keys.update(inbound.items)
    keys.update(state.request_items.values())
    return keys


def unconfirmed_cancellations(events: Iterable[InputEvent], state: LedgerState) -> list[str]:
    """The requests the events cancel of which the loaded state knows no item (no confirmation
    yet): the caller looks up their items (see ``LedgerState.request_items``)."""
    unknown: set[str] = set()
    for e in events:
        if type(e) is ReplenishmentCancelled:
            inbound = state.inbound.get(e.data.request_id)
            if inbound is None or not inbound.items:
                unknown.add(e.data.request_id)
    return sorted(unknown)


def counted_moments(events: Iterable[InputEvent]) -> list[tuple[ItemKey, datetime]]:
    """Each count's item and time, in the events' order, once each: a count applies to on_hand
    as it stood then, so the caller sums what the item's recorded entries moved after it (see
    ``LedgerState.on_hand_after``)."""
    moments: dict[tuple[ItemKey, datetime], None] = {}
    for e in events:
        if type(e) is ScanCounted:
            data = e.data
            moments[((data.sku, data.location), e.occurred_at)] = None
    return list(moments)


def fold(state: LedgerState, events: Sequence[InputEvent]) -> list[Entry]:
    """Apply the events in order; the entries of all of them, in the same order."""
    entries: list[Entry] = []
    for event in events:
        entries.extend(apply_event(state, event))
    return entries
