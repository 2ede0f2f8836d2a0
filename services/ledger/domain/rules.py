"""What each input event does to stock: ``apply_event(state, event) -> entries``.

Pure: no I/O. The caller supplies a :class:`LedgerState` holding every item balance, order and
inbound reference the event touches (absent ones start empty); ``apply_event`` updates it in place
and returns the ledger entries the event produces, in a stable order: at most one per item, and
after them a count compensation per item that needs one.
Redelivery is not handled here: the caller applies each ``event_id`` once.

A count sets on_hand as it stood at the count's time (``occurred_at``), not on arrival: movements
that occurred after it are left in place, and one that occurred before the item's latest count
but arrives after it is recorded, then taken back by a ``count_compensation`` entry dated at the
count, so that summing entries by ``occurred_at`` (stock as of a time) and today's on_hand agree
with what was counted. For the same reason an order line's shipped units are dated by their
earliest report (scan or fulfilment): a report that arrives after a later one of the same units
moves their entries back to its time.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from asyncpg.pgproto import pgproto

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

from .state import ItemKey, LedgerState, LineState, OrderState

ENTRY_NAMESPACE = uuid.UUID("5f1d7c1e-6a0b-4f5e-9a57-2d0c7c3b9e11")


class Refusal(Exception):  # noqa: N818 - a refusal is an outcome, not an error of the code
    """Raised by a rule, before it changes anything, for an event that breaks a stock rule: the
    event is recorded as refused (``LedgerState.refused``), with the dead letter's reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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


_Dated = tuple[ItemKey, datetime]


class _Effects:
    """Collects one event's deltas per item and applies them to the balances as they come."""

    __slots__ = ("compensations", "dated", "drafts", "state")

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.drafts: dict[ItemKey, _Draft] = {}
        # rare, so made when first needed: a batch applies tens of thousands of events
        self.dated: dict[_Dated, tuple[str, str | None, dict[str, Any], list[int]]] | None = None
        self.compensations: list[tuple[ItemKey, datetime, int]] | None = None

    def add_at(
        self,
        key: ItemKey,
        at: datetime,
        kind: str,
        *,
        reference: str | None,
        detail: dict[str, Any],
        on_hand: int,
    ) -> None:
        """An on_hand change dated at another time than the event's (see :func:`_redate`)."""
        if self.dated is None:
            self.dated = {}
        dated = self.dated.get((key, at))
        if dated is None:
            dated = self.dated[(key, at)] = (kind, reference, detail, [0])
        dated[3][0] += on_hand
        self.state.balance(key).on_hand += on_hand

    def compensate(self, key: ItemKey, cutoff: datetime, on_hand: int) -> None:
        """An entry at the item's count cut-off that takes back ``-on_hand`` units moved before
        it: the count there had seen them already."""
        if self.compensations is None:
            self.compensations = []
        self.compensations.append((key, cutoff, on_hand))

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
        event_id, occurred_at, source_type = event.event_id, event.occurred_at, event.type
        prefix = None
        state = self.state
        compensations = self.compensations or []
        track = state.track_moves
        for key, draft in self.drafts.items():
            sku, location = key
            on_hand, committed, damaged, quality_control, incoming = draft.deltas
            deltas: dict[str, int] = {}
            if on_hand:
                deltas["on_hand"] = on_hand
                if state.counted_at and draft.kind != "count":  # a count compensates itself
                    cutoff = state.counted_at.get(key)
                    if cutoff is not None and occurred_at <= cutoff:
                        # the count at the cut-off saw these units move already
                        compensations.append((key, cutoff, -on_hand))
                if track is None or key in track:
                    state.moves.setdefault(key, []).append((occurred_at, on_hand))
            if committed:
                deltas["committed"] = committed
            if damaged:
                deltas["damaged"] = damaged
            if quality_control:
                deltas["quality_control"] = quality_control
            if incoming:
                deltas["incoming"] = incoming
            if not deltas and not draft.keep_if_zero:
                continue
            if prefix is None:
                prefix = _id_prefix(event_id)
            line_no = len(out)
            out.append(
                Entry(
                    _entry_id_after(prefix, line_no),
                    event_id,
                    line_no,
                    sku,
                    location,
                    draft.kind,
                    deltas,
                    occurred_at,
                    source_type,
                    draft.reference,
                    draft.detail,
                )
            )
        for (key, at), (kind, reference, detail, moved_at) in (self.dated or {}).items():
            moved = moved_at[0]
            if not moved:
                continue
            if state.counted_at:
                cutoff = state.counted_at.get(key)
                if cutoff is not None and at <= cutoff:
                    compensations.append((key, cutoff, -moved))
            prefix = _on_hand_entry(
                out, state, prefix, event, key, kind, moved, at, reference, detail
            )
        for key, cutoff, moved in compensations:
            state.balance(key).on_hand += moved
            detail = {"counted_at": cutoff.astimezone(UTC).isoformat()}
            prefix = _on_hand_entry(
                out, state, prefix, event, key, "count_compensation", moved, cutoff, None, detail
            )
        return out


def _on_hand_entry(
    out: list[Entry],
    state: LedgerState,
    prefix: Any,
    event: InputEvent,
    key: ItemKey,
    kind: str,
    moved: int,
    at: datetime,
    reference: str | None,
    detail: dict[str, Any] | None,
) -> Any:
    """Appends an entry moving only on_hand, dated ``at`` (units dated by their earliest
    report, and count compensations), and remembers the move where counts need it; returns the
    event's entry-id prefix, computed on first use."""
    track = state.track_moves
    if track is None or key in track:
        state.moves.setdefault(key, []).append((at, moved))
    if prefix is None:
        prefix = _id_prefix(event.event_id)
    line_no = len(out)
    out.append(
        Entry(
            _entry_id_after(prefix, line_no),
            event.event_id,
            line_no,
            key[0],
            key[1],
            kind,
            {"on_hand": moved},
            at,
            event.type,
            reference,
            detail,
        )
    )
    return prefix


# Entry ids are uuid5 of the event id and the line number (deterministic, so a replay yields the
# same ids): SHA-1 over the namespace and the name, with the version and variant bits set. SHA-1
# is what uuid5 is defined with; there is no secret here.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5 = (0x5000 << 64) | (0x8000 << 48)


def _id_prefix(event_id: uuid.UUID) -> Any:
    """The hash of the namespace and the event id, which all of an event's entry ids share."""
    return hashlib.sha1(_NAMESPACE_BYTES + event_id.bytes)  # noqa: S324 - see above


_NAMESPACE_BYTES = ENTRY_NAMESPACE.bytes  # a property that builds the bytes on every read


def _entry_id_after(prefix: Any, line_no: int) -> uuid.UUID:
    digest = prefix.copy()
    digest.update(line_no.to_bytes(4, "big"))
    value = int.from_bytes(digest.digest()[:16]) & _VERSION_MASK | _VERSION_5
    # asyncpg's UUID is a uuid.UUID, built three times faster and written by COPY directly
    return pgproto.UUID(value.to_bytes(16))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONG_AGO = -(2**62)  # when units shipped before reports were kept left, as far as is known


def _micros(at: datetime) -> int:
    """µs since the epoch (exact: a float's error stays far below half a µs until 2255)."""
    return round(at.timestamp() * 1_000_000)


def _reports(line: LineState) -> list[list[int]]:
    """The line's reports, each [time, qty, channel], in time order."""
    flat = line.reports
    return [list(flat[i : i + 3]) for i in range(0, len(flat), 3)]


def _flat(reports: list[list[int]]) -> tuple[int, ...]:
    return tuple(n for report in sorted(reports) for n in report)


def _steps(line: LineState) -> list[tuple[int, int]]:
    """The line's shipped units by time: (time, units shipped by then) at each report, the
    larger of the two channels' reports so far (scans and fulfilments describe the same units,
    which left when first reported)."""
    reports = _reports(line)
    scanned = line.scanned - sum(q for _, q, channel in reports if channel == 0)
    fulfilled = line.fulfilled - sum(q for _, q, channel in reports if channel == 1)
    steps = [(_LONG_AGO, max(scanned, fulfilled))]
    for at, qty, channel in reports:
        if channel == 0:
            scanned += qty
        else:
            fulfilled += qty
        steps.append((at, max(scanned, fulfilled)))
    return steps


def _redate(
    fx: _Effects,
    key: ItemKey,
    before: list[tuple[int, int]],
    after: list[tuple[int, int]],
    occurred_at: datetime,
    kind: str,
    *,
    reference: str,
    detail: dict[str, Any],
) -> None:
    """The on_hand entries that turn a line's shipped units by time from ``before`` into
    ``after`` (see :func:`_steps`): at the event's time, in its entry, and at other report
    times in entries of their own, so that stock as of any time counts each unit shipped from
    its earliest report on."""
    event_time = _micros(occurred_at)
    values_before, values_after = dict(before), dict(after)
    shipped_before = shipped_after = moved = 0
    for at in sorted(values_before.keys() | values_after.keys()):
        shipped_before = values_before.get(at, shipped_before)
        shipped_after = values_after.get(at, shipped_after)
        change = (shipped_after - shipped_before) - moved
        if not change:
            continue
        moved += change
        if at in (event_time, _LONG_AGO):
            fx.add(key, kind, reference=reference, detail=detail, on_hand=-change)
        else:
            when = _EPOCH + timedelta(microseconds=at)
            fx.add_at(key, when, kind, reference=reference, detail=detail, on_hand=-change)


def _line_moved(
    fx: _Effects,
    line: LineState,
    committed: int,
    *,
    kind: str,
    order_id: str,
    line_id: str,
) -> None:
    """What an order line's change commits or releases, given what it committed before. The
    units it ships move on_hand through :func:`_redate`."""
    committed_now = line.committed
    if committed_now == committed or line.sku is None or line.location is None:
        return
    detail = {"order_id": order_id, "line_id": line_id}
    fx.add(
        (line.sku, line.location),
        kind,
        reference=order_id,
        detail=detail,
        committed=committed_now - committed,
    )


def _unlined(sku: str) -> str:
    """The pseudo-line holding an order's units of ``sku`` scanned as shipped without a line id
    before any line of the order for that sku was known."""
    return f"@{sku}"


def _line_for_scan(order: OrderState, sku: str, line_id: str | None) -> str:
    """The line a shipment scan belongs to: the one it names, else the order's line for the sku."""
    if line_id is not None:
        return line_id
    pool = _unlined(sku)
    candidates = [lid for lid, ln in sorted(order.lines.items()) if ln.sku == sku and lid != pool]
    open_lines = [lid for lid in candidates if order.lines[lid].committed > 0]
    return (open_lines or candidates or [pool])[0]


def _absorb_unlined(
    fx: _Effects,
    order: OrderState,
    line: LineState,
    sku: str,
    occurred_at: datetime,
    *,
    order_id: str,
    line_id: str,
    kind: str,
    everything: bool = True,
) -> None:
    """Move the order's unlined shipped units of ``sku`` into ``line`` (all of them, or with
    ``everything`` false up to what the placed line ordered), earliest first: they were that
    line's units, as a scan without a line id after the placement would have been taken. Gives
    back the on_hand the pool took for units the line reports as shipped already (scans and
    fulfilments describe the same units)."""
    pool_id = _unlined(sku)
    pool = order.lines.get(pool_id)
    if pool is None or pool.scanned <= 0 or pool is line or pool.location is None:
        return
    capped = not everything and line.ordered > 0
    take = min(pool.scanned, max(0, line.ordered - line.scanned)) if capped else pool.scanned
    if take == 0:
        return
    pool_before, line_before = _steps(pool), _steps(line)
    pool_reports, line_reports = _reports(pool), _reports(line)
    left = take
    for report in pool_reports:  # earliest first
        if not left:
            break
        n = min(report[1], left)
        line_reports.append([report[0], n, 0])
        report[1] -= n
        left -= n
    line.reports = _flat(line_reports)
    pool.reports = _flat([report for report in pool_reports if report[1] > 0])
    pool.scanned -= take
    line.scanned += take
    if line.sku is None:
        line.sku = sku
    where = (sku, pool.location)  # where the units were scanned
    for moved, before, moved_id in ((pool, pool_before, pool_id), (line, line_before, line_id)):
        detail = {"order_id": order_id, "line_id": moved_id}
        _redate(
            fx, where, before, _steps(moved), occurred_at, kind, reference=order_id, detail=detail
        )


def _ship(
    fx: _Effects,
    line: LineState,
    sku: str,
    qty: int,
    channel: str,
    key: ItemKey,
    occurred_at: datetime,
    *,
    reference: str,
    detail: dict[str, Any],
) -> None:
    """Record a report of ``qty`` units of the line shipped from ``key`` and move on_hand by
    what it ships that no earlier report did: at once when it is the line's latest report (the
    usual case), else through :func:`_redate`."""
    at = _micros(occurred_at)
    reports = line.reports
    in_order = not reports or at >= reports[-3]
    before = None if in_order else _steps(line)
    shipped = line.shipped
    if line.sku is None:
        line.sku = sku
    if channel == "scan":
        line.scanned += qty
    else:
        line.fulfilled += qty
    report = (at, qty, 0 if channel == "scan" else 1)
    if in_order:  # reports are kept in time order
        line.reports = reports + report
        if line.shipped != shipped:
            fx.add(
                key, "shipment", reference=reference, detail=detail, on_hand=shipped - line.shipped
            )
    else:
        line.reports = _flat([*_reports(line), list(report)])
        assert before is not None
        _redate(
            fx,
            key,
            before,
            _steps(line),
            occurred_at,
            "shipment",
            reference=reference,
            detail=detail,
        )


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
    line = order.line(line_id)
    committed = line.committed
    if line_id == _unlined(d.sku):
        line.location = d.location  # where the unlined units left, given back if they reappear
    detail = {"order_id": d.order_id, "line_id": line_id}
    key = (d.sku, d.location)
    _ship(fx, line, d.sku, d.qty, "scan", key, e.occurred_at, reference=d.order_id, detail=detail)
    _line_moved(
        fx,
        line,
        committed,
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


def _newly_damaged(state: LedgerState, key: ItemKey, qty: int) -> int:
    """How much of ``qty`` units reported damaged enters the damaged state: units written off
    before their damage scan arrived left it already."""
    pending = state.written_off.get(key, 0)
    if pending <= 0:
        return qty
    netted = min(qty, pending)
    if pending > netted:
        state.written_off[key] = pending - netted
    else:
        del state.written_off[key]
    return qty - netted


def _written_off(state: LedgerState, key: ItemKey, qty: int) -> int:
    """The (negative) change of damaged for ``qty`` units written off. Damaged never goes below
    zero: units beyond it are remembered, and their damage scan, when it comes, adds nothing."""
    taken = min(qty, max(0, state.balance(key).damaged))
    if taken < qty:
        state.written_off[key] = state.written_off.get(key, 0) + qty - taken
    return -taken


def _adjusted(fx: _Effects, e: ScanAdjusted) -> None:
    d = e.data
    key = (d.sku, d.location)
    on_hand_sign, damaged_sign = _ADJUSTMENTS[d.reason]
    damaged = damaged_sign * d.qty
    if damaged < 0:
        damaged = _written_off(fx.state, key, d.qty)
    elif damaged > 0:
        damaged = _newly_damaged(fx.state, key, d.qty)
    fx.add(
        key,
        "adjustment",
        detail={"reason": d.reason},
        keep_if_zero=True,
        on_hand=on_hand_sign * d.qty,
        damaged=damaged,
    )


def _counted(fx: _Effects, e: ScanCounted) -> None:
    """The count applies to on_hand as it stood at the count's time. A count older than the
    item's latest is recorded in its place in time, and compensated at the latest count, which
    it does not change; a later one becomes the item's cut-off."""
    d = e.data
    key = (d.sku, d.location)
    state = fx.state
    expected = state.on_hand_at(key, e.occurred_at)
    fx.add(
        key,
        "count",
        detail={"expected": expected, "counted": d.counted_qty},
        keep_if_zero=True,
        on_hand=d.counted_qty - expected,
    )
    cutoff = state.counted_at.get(key)
    if cutoff is not None and e.occurred_at < cutoff:
        fx.compensate(key, cutoff, expected - d.counted_qty)  # the later count stands
    else:
        state.counted_at[key] = e.occurred_at


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
    inbound.item(to).expected += d.qty  # each scan sends more units under the same transfer
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
    key = (d.sku, d.location)
    fx.add(
        key,
        "return",
        reference=d.order_id,
        detail=detail,
        on_hand=d.qty,
        damaged=_newly_damaged(fx.state, key, d.qty) if damaged else 0,
        quality_control=quality_control * d.qty,
    )


def _inspected(fx: _Effects, e: ScanInspected) -> None:
    """Units leave quality control, as sellable or damaged; never more than it holds, so that it
    never goes negative: the event is refused (``schema``: it cannot be taken as it is)."""
    d = e.data
    key = (d.sku, d.location)
    holds = fx.state.balance(key).quality_control
    if d.qty > holds:
        raise Refusal("schema", f"qty {d.qty} is more than quality_control holds ({holds})")
    fx.add(
        key,
        "inspection",
        detail={"outcome": d.outcome},
        quality_control=-d.qty,
        damaged=_newly_damaged(fx.state, key, d.qty) if d.outcome == "damaged" else 0,
    )


def _moved(fx: _Effects, e: ScanMoved) -> None:
    d = e.data
    detail = {"qty": d.qty, "from_bin": d.from_bin, "to_bin": d.to_bin}
    fx.add((d.sku, d.location), "move", detail=detail, keep_if_zero=True)


def _placed(fx: _Effects, e: OrderPlaced) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    last_of_sku: dict[str, str] | None = None  # made when first needed: rarely
    for placed in d.lines:
        line = order.lines.get(placed.line_id)
        if (
            line is None
            and not order.cancelled
            and (not order.lines or _unlined(placed.sku) not in order.lines)
        ):  # the usual case, in short: a new line commits
            key = (placed.sku, d.location)
            order.lines[placed.line_id] = LineState(key[0], key[1], placed.qty)
            detail = {"order_id": d.order_id, "line_id": placed.line_id}
            fx.add(key, "commitment", reference=d.order_id, detail=detail, committed=placed.qty)
            continue
        if last_of_sku is None:  # each sku's last line takes what the others left
            last_of_sku = {placed.sku: placed.line_id for placed in d.lines}
        line = order.line(placed.line_id)
        committed = line.committed
        if line.ordered == 0:  # a line is placed once; a repeated placement changes nothing
            line.sku, line.location, line.ordered = placed.sku, d.location, placed.qty
        elif line.sku is None:
            line.sku, line.location = placed.sku, d.location
        _absorb_unlined(
            fx,
            order,
            line,
            placed.sku,
            e.occurred_at,
            order_id=d.order_id,
            line_id=placed.line_id,
            kind="commitment",
            everything=last_of_sku[placed.sku] == placed.line_id,
        )
        _line_moved(
            fx,
            line,
            committed,
            kind="commitment",
            order_id=d.order_id,
            line_id=placed.line_id,
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
        line = order.line(line_id)
        committed = line.committed
        line.cancelled = True
        _line_moved(
            fx,
            line,
            committed,
            kind="release",
            order_id=d.order_id,
            line_id=line_id,
        )


def _fulfilled(fx: _Effects, e: OrderFulfilled) -> None:
    d = e.data
    order = fx.state.order(d.order_id)
    for done in d.lines:
        line = order.line(done.line_id)
        committed = line.committed
        _absorb_unlined(
            fx,
            order,
            line,
            done.sku,
            e.occurred_at,
            order_id=d.order_id,
            line_id=done.line_id,
            kind="shipment",
        )
        detail = {"order_id": d.order_id, "line_id": done.line_id}
        key = (done.sku, d.location)
        _ship(
            fx,
            line,
            done.sku,
            done.qty,
            "fulfilment",
            key,
            e.occurred_at,
            reference=d.order_id,
            detail=detail,
        )
        _line_moved(
            fx,
            line,
            committed,
            kind="shipment",
            order_id=d.order_id,
            line_id=done.line_id,
        )


def _confirmed(fx: _Effects, e: ReplenishmentConfirmed) -> None:
    d = e.data
    key = (d.sku, d.location)
    inbound = fx.state.inbound_for(d.request_id)
    before = inbound.incoming(key)
    inbound.item(key).expected = d.qty
    detail = {"expected_at": d.expected_at.astimezone(UTC).isoformat()} if d.expected_at else None
    fx.add(
        key,
        "replenishment_confirmed",
        reference=d.request_id,
        detail=detail,
        keep_if_zero=True,
        incoming=inbound.incoming(key) - before,
    )


def _request_cancelled(fx: _Effects, e: ReplenishmentCancelled) -> None:
    request_id = e.data.request_id
    inbound = fx.state.inbound_for(request_id)
    before = {key: inbound.incoming(key) for key in inbound.items}
    if not before and request_id in fx.state.request_items:  # closed before any confirmation
        before[fx.state.request_items[request_id]] = 0
    inbound.closed = True
    for key in sorted(before):
        fx.add(
            key,
            "replenishment_cancelled",
            reference=request_id,
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
    ScanInspected: _inspected,
    OrderPlaced: _placed,
    OrderCancelled: _cancelled,
    OrderFulfilled: _fulfilled,
    ReplenishmentConfirmed: _confirmed,
    ReplenishmentCancelled: _request_cancelled,
}


def apply_event(state: LedgerState, event: InputEvent) -> list[Entry]:
    """Apply one event to ``state`` and return the ledger entries it produces; an event a rule
    refuses produces none, changes nothing and is added to ``state.refused``."""
    fx = _Effects(state)
    try:
        _RULES[type(event)](fx, event)
    except Refusal as refusal:
        state.refused.append((event, refusal.reason, refusal.detail))
        return []
    return fx.entries(event)
