"""What each input event does to stock: ``apply_event(state, event) -> entries``.

Pure: no I/O. The caller supplies a :class:`LedgerState` holding every item balance, order and
inbound reference the event touches (absent ones start empty); ``apply_event`` updates it in place
and returns the ledger entries the event produces, at most one per item, in a stable order.
Redelivery is not handled here: the caller applies each ``event_id`` once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

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

from .state import STATES, ItemKey, LedgerState, LineState, OrderState

ENTRY_NAMESPACE = uuid.UUID("5f1d7c1e-6a0b-4f5e-9a57-2d0c7c3b9e11")


class Entry(NamedTuple):
    """A ledger entry before it is appended (the ledger assigns its position). Immutable; a
    named tuple because a batch makes tens of thousands of them, and a frozen dataclass takes
    three times as long to build."""

    entry_id: uuid.UUID
    source_event_id: uuid.UUID
    line_no: int
    sku: str
    location: str
    kind: str
    deltas: dict[str, int]
    occurred_at: datetime
    source_type: str
    reference: str | None = None
    detail: dict[str, Any] | None = None


class _Draft:
    """One item's entry while an event is being applied: deltas in STATES order."""

    __slots__ = ("deltas", "detail", "keep_if_zero", "kind", "reference")

    def __init__(self, kind: str, reference: str | None) -> None:
        self.kind = kind
        self.reference = reference
        self.deltas = [0, 0, 0, 0, 0]
        self.detail: dict[str, Any] | None = None
        self.keep_if_zero = False


class _Effects:
    """Collects one event's deltas per item and applies them to the balances as they come."""

    __slots__ = ("drafts", "state")

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.drafts: dict[ItemKey, _Draft] = {}

    def add(
        self,
        key: ItemKey,
        kind: str,
        *,
        reference: str | None = None,
        keep_if_zero: bool = False,
        detail: dict[str, Any] | None = None,
        on_hand: int = 0,
        committed: int = 0,
        damaged: int = 0,
        quality_control: int = 0,
        incoming: int = 0,
    ) -> None:
        draft = self.drafts.get(key)
        if draft is None:
            draft = self.drafts[key] = _Draft(kind, reference)
        if keep_if_zero:
            draft.keep_if_zero = True
        if detail:
            if draft.detail is None:
                draft.detail = dict(detail)
            else:
                draft.detail.update(detail)
        balance = self.state.balance(key)
        d = draft.deltas
        if on_hand:
            d[0] += on_hand
            balance.on_hand += on_hand
        if committed:
            d[1] += committed
            balance.committed += committed
        if damaged:
            d[2] += damaged
            balance.damaged += damaged
        if quality_control:
            d[3] += quality_control
            balance.quality_control += quality_control
        if incoming:
            d[4] += incoming
            balance.incoming += incoming

    def entries(self, event: InputEvent) -> list[Entry]:
        out: list[Entry] = []
        event_id = event.event_id
        for (sku, location), draft in self.drafts.items():
            deltas = {name: n for name, n in zip(STATES, draft.deltas, strict=True) if n}
            if not deltas and not draft.keep_if_zero:
                continue
            line_no = len(out)
            out.append(
                Entry(
                    entry_id=_entry_id(event_id, line_no),
                    source_event_id=event_id,
                    line_no=line_no,
                    sku=sku,
                    location=location,
                    kind=draft.kind,
                    deltas=deltas,
                    occurred_at=event.occurred_at,
                    source_type=event.type,
                    reference=draft.reference,
                    detail=draft.detail,
                )
            )
        return out


def _entry_id(event_id: uuid.UUID, line_no: int) -> uuid.UUID:
    """uuid5 of the event id and the line (deterministic, so a replay yields the same ids)."""
    digest = hashlib.sha1(  # noqa: S324 - uuid5 is defined with SHA-1; no secret here
        ENTRY_NAMESPACE.bytes + event_id.bytes + line_no.to_bytes(4, "big")
    )
    return uuid.UUID(bytes=digest.digest()[:16], version=5)


def _line_effect(
    fx: _Effects,
    line: LineState,
    change: Callable[[LineState], None],
    *,
    ship_at: ItemKey | None,
    kind: str,
    order_id: str,
    line_id: str,
) -> None:
    """Apply ``change`` to an order line; what moves is the difference in its derived figures."""
    shipped, committed = line.shipped, line.committed
    change(line)
    detail = {"order_id": order_id, "line_id": line_id}
    if ship_at is not None and line.shipped != shipped:
        fx.add(ship_at, kind, reference=order_id, detail=detail, on_hand=shipped - line.shipped)
    if line.committed != committed and line.sku is not None and line.location is not None:
        fx.add(
            (line.sku, line.location),
            kind,
            reference=order_id,
            detail=detail,
            committed=line.committed - committed,
        )


def _line_for_scan(order: OrderState, sku: str, line_id: str | None) -> str:
    """The line a shipment scan belongs to: the one it names, else the order's line for the sku."""
    if line_id is not None:
        return line_id
    candidates = [lid for lid, ln in sorted(order.lines.items()) if ln.sku == sku]
    open_lines = [lid for lid in candidates if order.lines[lid].committed > 0]
    return (open_lines or candidates or [f"@{sku}"])[0]


def _place(sku: str, location: str, qty: int) -> Callable[[LineState], None]:
    def change(line: LineState) -> None:
        if line.ordered == 0:  # a line is placed once; a repeated placement changes nothing
            line.sku, line.location, line.ordered = sku, location, qty
        elif line.sku is None:
            line.sku, line.location = sku, location

    return change


def _ship(sku: str, qty: int, channel: str) -> Callable[[LineState], None]:
    def change(line: LineState) -> None:
        if line.sku is None:
            line.sku = sku
        if channel == "scan":
            line.scanned += qty
        else:
            line.fulfilled += qty

    return change


def _cancel(line: LineState) -> None:
    line.cancelled = True


def _received(fx: _Effects, e: ScanReceived) -> None:
    d = e.data
    key = (d.sku, d.location)
    fx.add(key, "receipt", reference=d.reference, on_hand=d.qty)
    if d.reference is not None:
        inbound = fx.state.inbound_for(d.reference)
        before = inbound.incoming(key)
        inbound.item(key).received += d.qty
        fx.add(key, "receipt", incoming=inbound.incoming(key) - before)


def _shipped(fx: _Effects, e: ScanShipped) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    line_id = _line_for_scan(order, d.sku, d.line_id)
    _line_effect(
        fx,
        order.line(line_id),
        _ship(d.sku, d.qty, "scan"),
        ship_at=(d.sku, d.location),
        kind="shipment",
        order_id=d.order_id,
        line_id=line_id,
    )


_ADJUSTMENTS: dict[str, tuple[int, int]] = {
    # reason: (on_hand sign, damaged sign)
    "found": (1, 0),
    "lost": (-1, 0),
    "expired": (-1, 0),
    "damaged": (0, 1),
    "write_off": (-1, -1),
    "correction": (1, 0),
}


def _adjusted(fx: _Effects, e: ScanAdjusted) -> None:
    d = e.data
    key = (d.sku, d.location)
    on_hand_sign, damaged_sign = _ADJUSTMENTS[d.reason]
    damaged = damaged_sign * d.qty
    if damaged < 0:  # written-off units leave the damaged state, which never goes below zero
        damaged = -min(d.qty, max(0, fx.state.balance(key).damaged))
    fx.add(
        key,
        "adjustment",
        detail={"reason": d.reason},
        keep_if_zero=True,
        on_hand=on_hand_sign * d.qty,
        damaged=damaged,
    )


def _counted(fx: _Effects, e: ScanCounted) -> None:
    d = e.data
    key = (d.sku, d.location)
    expected = fx.state.balance(key).on_hand
    fx.add(
        key,
        "count",
        detail={"expected": expected, "counted": d.counted_qty},
        keep_if_zero=True,
        on_hand=d.counted_qty - expected,
    )


def _transferred(fx: _Effects, e: ScanTransferred) -> None:
    d = e.data
    detail = {"from_location": d.from_location, "to_location": d.to_location}
    fx.add(
        (d.sku, d.from_location),
        "transfer_out",
        reference=d.transfer_id,
        detail=detail,
        on_hand=-d.qty,
    )
    to = (d.sku, d.to_location)
    inbound = fx.state.inbound_for(d.transfer_id)
    before = inbound.incoming(to)
    inbound.item(to).expected = d.qty
    fx.add(
        to,
        "transfer_in",
        reference=d.transfer_id,
        detail=detail,
        incoming=inbound.incoming(to) - before,
    )


_RETURNS: dict[str, tuple[int, int]] = {
    # condition: (damaged, quality_control) per unit, on top of on_hand
    "sellable": (0, 0),
    "damaged": (1, 0),
    "inspect": (0, 1),
}


def _returned(fx: _Effects, e: ScanReturned) -> None:
    d = e.data
    damaged, quality_control = _RETURNS[d.condition]
    detail: dict[str, Any] = {"condition": d.condition}
    if d.order_id is not None:
        detail["order_id"] = d.order_id
    fx.add(
        (d.sku, d.location),
        "return",
        reference=d.order_id,
        detail=detail,
        on_hand=d.qty,
        damaged=damaged * d.qty,
        quality_control=quality_control * d.qty,
    )


def _moved(fx: _Effects, e: ScanMoved) -> None:
    d = e.data
    detail = {"qty": d.qty, "from_bin": d.from_bin, "to_bin": d.to_bin}
    fx.add((d.sku, d.location), "move", detail=detail, keep_if_zero=True)


def _placed(fx: _Effects, e: OrderPlaced) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    for line in d.lines:
        _line_effect(
            fx,
            order.line(line.line_id),
            _place(line.sku, d.location, line.qty),
            ship_at=None,
            kind="commitment",
            order_id=d.order_id,
            line_id=line.line_id,
        )


def _cancelled(fx: _Effects, e: OrderCancelled) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    if d.lines is None:
        order.cancelled = True
        line_ids = sorted(order.lines)
    else:
        line_ids = [line.line_id for line in d.lines]
    for line_id in line_ids:
        _line_effect(
            fx,
            order.line(line_id),
            _cancel,
            ship_at=None,
            kind="release",
            order_id=d.order_id,
            line_id=line_id,
        )


def _fulfilled(fx: _Effects, e: OrderFulfilled) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    for line in d.lines:
        _line_effect(
            fx,
            order.line(line.line_id),
            _ship(line.sku, line.qty, "fulfilment"),
            ship_at=(line.sku, d.location),
            kind="shipment",
            order_id=d.order_id,
            line_id=line.line_id,
        )


def _confirmed(fx: _Effects, e: ReplenishmentConfirmed) -> None:
    d = e.data
    key = (d.sku, d.location)
    inbound = fx.state.inbound_for(d.request_id)
    before = inbound.incoming(key)
    inbound.item(key).expected = d.qty
    detail = {"expected_at": d.expected_at.isoformat()} if d.expected_at else None
    fx.add(
        key,
        "replenishment_confirmed",
        reference=d.request_id,
        detail=detail,
        keep_if_zero=True,
        incoming=inbound.incoming(key) - before,
    )


def _request_cancelled(fx: _Effects, e: ReplenishmentCancelled) -> None:
    inbound = fx.state.inbound_for(e.data.request_id)
    before = {key: inbound.incoming(key) for key in inbound.items}
    inbound.closed = True
    for key in sorted(before):
        fx.add(
            key,
            "replenishment_cancelled",
            reference=e.data.request_id,
            keep_if_zero=True,
            incoming=-before[key],
        )


_RULES: dict[type[Any], Callable[[_Effects, Any], None]] = {
    ScanReceived: _received,
    ScanShipped: _shipped,
    ScanAdjusted: _adjusted,
    ScanCounted: _counted,
    ScanTransferred: _transferred,
    ScanReturned: _returned,
    ScanMoved: _moved,
    OrderPlaced: _placed,
    OrderCancelled: _cancelled,
    OrderFulfilled: _fulfilled,
    ReplenishmentConfirmed: _confirmed,
    ReplenishmentCancelled: _request_cancelled,
}


def apply_event(state: LedgerState, event: InputEvent) -> list[Entry]:
    """Apply one event to ``state`` and return the ledger entries it produces."""
    fx = _Effects(state)
    _RULES[type(event)](fx, event)
    return fx.entries(event)
