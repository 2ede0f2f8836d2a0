"""The state the ledger's rules read and update: item balances, order lines and inbound references.

Pure data, no I/O. Quantities that depend on history (what is still committed on an order line,
what is still expected on a request) are derived from cumulative figures rather than stored, so
events arriving out of order or twice over different channels settle to the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ItemKey = tuple[str, str]
"""(sku, location)"""

STATES = ("on_hand", "committed", "damaged", "quality_control", "incoming")


@dataclass(slots=True)
class Balance:
    on_hand: int = 0
    committed: int = 0
    damaged: int = 0
    quality_control: int = 0
    incoming: int = 0

    def add(self, deltas: dict[str, int]) -> None:
        for name, delta in deltas.items():
            setattr(self, name, getattr(self, name) + delta)


@dataclass(slots=True)
class LineState:
    """One order line as far as the ledger has heard of it, from any channel, in any order."""

    sku: str | None = None
    location: str | None = None
    ordered: int = 0  # 0 until the line is placed
    scanned: int = 0  # units reported by scan.shipped
    fulfilled: int = 0  # units reported by order.fulfilled
    cancelled: bool = False
    # Each report of shipped units, in time order, as three numbers: occurred_at in µs since the
    # epoch, qty, 0 for a scan or 1 for a fulfilment. Units are dated by their earliest report,
    # whichever arrives first (units counted in ``scanned`` and ``fulfilled`` but in no report
    # were recorded before reports were kept). One flat tuple of ints: the garbage collector
    # does not track it, and a batch holds many lines.
    reports: tuple[int, ...] = ()

    @property
    def shipped(self) -> int:
        """Scans and fulfilment reports describe the same units: each unit ships once."""
        return max(self.scanned, self.fulfilled)

    @property
    def committed(self) -> int:
        if self.cancelled or self.ordered == 0:
            return 0
        return max(0, self.ordered - self.shipped)

    def to_json(self) -> list[Any]:
        out: list[Any] = [
            self.sku,
            self.location,
            self.ordered,
            self.scanned,
            self.fulfilled,
            self.cancelled,
        ]
        if self.reports:
            out.append(self.reports)
        return out

    @classmethod
    def from_json(cls, raw: list[Any]) -> LineState:
        line = cls(*raw[:6])
        if len(raw) > 6:
            line.reports = tuple(raw[6])
        return line


@dataclass(slots=True)
class OrderState:
    lines: dict[str, LineState] = field(default_factory=dict)
    cancelled: bool = False  # the whole order: lines placed later are cancelled too

    def line(self, line_id: str) -> LineState:
        line = self.lines.get(line_id)
        if line is None:
            line = self.lines[line_id] = LineState(cancelled=self.cancelled)
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "cancelled": self.cancelled,
            "lines": {k: v.to_json() for k, v in self.lines.items()},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OrderState:
        lines = {k: LineState.from_json(v) for k, v in raw["lines"].items()}
        return cls(lines=lines, cancelled=raw["cancelled"])


@dataclass(slots=True)
class Inbound:
    expected: int = 0
    received: int = 0


@dataclass(slots=True)
class InboundState:
    """Units expected on one replenishment request or transfer, per item, and what arrived."""

    items: dict[ItemKey, Inbound] = field(default_factory=dict)
    closed: bool = False  # cancelled: nothing more is expected

    def incoming(self, key: ItemKey) -> int:
        item = self.items.get(key)
        if self.closed or item is None:
            return 0
        return max(0, item.expected - item.received)

    def item(self, key: ItemKey) -> Inbound:
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = Inbound()
        return item

    def to_json(self) -> dict[str, Any]:
        items = [[s, loc, i.expected, i.received] for (s, loc), i in self.items.items()]
        return {"closed": self.closed, "items": items}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InboundState:
        items = {(s, loc): Inbound(e, r) for s, loc, e, r in raw["items"]}
        return cls(items=items, closed=raw["closed"])


@dataclass(slots=True)
class LedgerState:
    """What a batch of events may read and change; the caller loads every key the batch touches."""

    balances: dict[ItemKey, Balance] = field(default_factory=dict)
    orders: dict[str, OrderState] = field(default_factory=dict)
    inbound: dict[str, InboundState] = field(default_factory=dict)
    # Per item, units written off beyond what was damaged: their damage scan has not been seen
    # yet, and nets against it when it comes, so a write-off and its damage scan commute.
    written_off: dict[ItemKey, int] = field(default_factory=dict)
    # Per item, the count cut-off: when its latest count occurred. A count saw every movement
    # that occurred by then, so one reported later is recorded and compensated at the cut-off.
    counted_at: dict[ItemKey, datetime] = field(default_factory=dict)
    # A count applies to on_hand as of its time: today's on_hand less the movements that
    # occurred after it. Those recorded before the fold began are summed by the caller, per
    # count (item and time) in the fold; those the fold makes are journalled as it goes, for the
    # items in ``track_moves`` (None: every item).
    on_hand_after: dict[tuple[ItemKey, datetime], int] = field(default_factory=dict)
    moves: dict[ItemKey, list[tuple[datetime, int]]] = field(default_factory=dict)
    track_moves: set[ItemKey] | None = None
    # The item of each replenishment request the batch cancels before any confirmation told the
    # ledger what it was for (the caller looks them up among the requests it knows of): the
    # cancellation is recorded against that item, so whoever follows the request sees it closed.
    request_items: dict[str, ItemKey] = field(default_factory=dict)
    # The events a rule refused (no effect on stock), with the dead letter's reason and detail.
    refused: list[tuple[Any, str, str]] = field(default_factory=list)

    def on_hand_at(self, key: ItemKey, moment: datetime) -> int:
        """The item's on_hand as of ``moment``: its entries that occurred by then, summed."""
        later = self.on_hand_after.get((key, moment), 0)
        later += sum(n for at, n in self.moves.get(key, ()) if at > moment)
        return self.balance(key).on_hand - later

    def balance(self, key: ItemKey) -> Balance:
        balance = self.balances.get(key)
        if balance is None:
            balance = self.balances[key] = Balance()
        return balance

    def order(self, order_id: str) -> OrderState:
        order = self.orders.get(order_id)
        if order is None:
            order = self.orders[order_id] = OrderState()
        return order

    def inbound_for(self, reference: str) -> InboundState:
        inbound = self.inbound.get(reference)
        if inbound is None:
            inbound = self.inbound[reference] = InboundState()
        return inbound
