"""``stockledger backtest``: what a replenishment policy would have done on the demand a running
suite's ledger recorded, before it is switched on.

The ledger (``ledger_entries``) is read in chunks, by position, and the input events the closed
loop needs are rebuilt from its entries by :func:`events_from_entries` (pure): orders placed with
their lines, shipments, cancellations and stock adjustments. Receipts, replenishments, transfers,
counts and returns are left out: the closed loop sets its own opening stock and places its own
requests. The closed loop then runs as ``python -m simulation`` runs it on a CSV: the frontier
(every policy at each of its settings), or with ``--point`` one run per policy at its default
setting; with lost sales, or with ``--backorders`` every line taken as the ledger takes it.

What an order looked like is read from its entries: the ``commitment`` entries of its placement
(one per item: an order's lines of the same item are one entry, which names the last of them),
the ``shipment`` entries of each line, and the ``release`` entries of its cancellations (one per
item too, naming the last line released). Lines of one item are told apart by their shipments and
releases; where units are left that no shipment accounts for (lines still open, or cancelled
together), the ledger's order state (``ledger_orders``: each line's units ordered and whether it
was cancelled) tells them apart, for those orders only. Without it, such lines come back as one
line, the one the commitment names. A line whose shipment reached the ledger before its placement
left only its shipment (the placement had nothing to commit): it joins its order's placement. An
order whose every line did so left no entry of its placement, and its time is lost: it is left
out.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.ledger.domain.state import OrderState

from . import frontier, report
from .closed_loop import SimConfig, SimResult

POLICIES = ("lines", "normal", "static", "min_max")
SOURCES = ("order.placed", "scan.shipped", "order.fulfilled", "order.cancelled", "scan.adjusted")
"""The input event types whose entries the closed loop needs."""
CHUNK = 10_000
NAMESPACE = uuid.UUID("0c1f4a52-3d7e-4b8a-9f26-6e5d2a7b1c93")
COLUMNS = (
    "position, source_event_id, line_no, sku, location, kind, on_hand, committed, damaged,"
    " occurred_at, source_type, reference, detail"
)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The columns of a ledger entry the reconstruction reads."""

    position: int
    source_event_id: str
    line_no: int
    sku: str
    location: str
    kind: str
    on_hand: int
    committed: int
    damaged: int
    occurred_at: datetime
    source_type: str
    reference: str | None = None
    detail: dict[str, Any] | None = None


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _natural(line_id: str) -> tuple[Any, ...]:
    """Line ids in their natural order: ``2`` before ``10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", line_id))


@dataclass
class _Source:
    """One input event's entries."""

    event_id: str
    type: str
    position: int
    occurred_at: datetime
    rows: list[LedgerRow] = field(default_factory=list)


OrderLines = Mapping[str, Mapping[str, tuple[str | None, str | None, int, bool]]]
"""Per order id, its lines as the ledger's order state (``ledger_orders``) holds them: line id →
(sku, location, units ordered, cancelled)."""


def unresolved_orders(rows: Iterable[LedgerRow]) -> set[str]:
    """Orders whose commitment entries hold units that no shipment entry accounts for (lines
    cancelled or still open): their lines of one item cannot all be told apart by shipments."""
    units: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        order_id = (row.detail or {}).get("order_id")
        if order_id is None:
            continue
        placing = row.kind == "commitment" and row.source_type == "order.placed"
        if (placing and row.committed > 0) or row.kind == "shipment":  # shipments: negative
            units[(order_id, row.sku, row.location)] += row.committed
    return {order_id for (order_id, _, _), left in units.items() if left > 0}


def events_from_entries(
    rows: Iterable[LedgerRow], order_lines: OrderLines | None = None
) -> list[dict[str, Any]]:
    """The input events (``order.placed``, ``scan.shipped``, ``order.cancelled``,
    ``scan.adjusted``) that the closed loop needs, rebuilt from ledger entries; in event time,
    events of the same time in ledger order. Shipments and cancellations of order lines whose
    placement is not among the entries (placed before the range read, or placed after the
    ledger had their shipment: the placement then changed nothing and left no entry) are left
    out. ``order_lines``, for the :func:`unresolved_orders`, tells apart lines of one item that
    neither shipments nor cancellations do (cancelled together, or still open)."""
    hints = order_lines or {}
    sources: dict[str, _Source] = {}
    for row in rows:
        source = sources.get(row.source_event_id)
        if source is None:
            source = sources[row.source_event_id] = _Source(
                row.source_event_id, row.source_type, row.position, row.occurred_at
            )
        source.rows.append(row)

    # what each order line shipped (units the line released from committed, units moved) and
    # what each cancellation released, per order and item
    shipped: dict[tuple[str, str], int] = defaultdict(int)
    shipped_lines: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    released: dict[tuple[str, str, str], list[tuple[str, int]]] = defaultdict(list)
    moved: dict[tuple[str, str], tuple[str, str, int]] = {}  # line → sku, location, units out
    for source in sources.values():
        for row in source.rows:
            detail = row.detail or {}
            order_id, line_id = detail.get("order_id"), detail.get("line_id")
            if order_id is None or line_id is None:
                continue
            if row.kind == "shipment" and source.type in ("scan.shipped", "order.fulfilled"):
                if (order_id, line_id) not in shipped:
                    shipped_lines[(order_id, row.sku, row.location)].append(line_id)
                shipped[(order_id, line_id)] -= row.committed
                units = moved.get((order_id, line_id), (row.sku, row.location, 0))[2]
                moved[(order_id, line_id)] = (row.sku, row.location, units - row.on_hand)
            elif row.kind == "release" and source.type == "order.cancelled" and row.committed < 0:
                released[(order_id, row.sku, row.location)].append((line_id, -row.committed))

    out: list[tuple[datetime, int, dict[str, Any]]] = []
    first: dict[str, dict[str, Any]] = {}  # each order's first placement
    for source in sorted(sources.values(), key=lambda s: s.position):
        if source.type == "order.placed":
            event = _placement(source, shipped, shipped_lines, released, hints)
            if event is not None:
                first.setdefault(event["data"]["order_id"], event)
                out.append((source.occurred_at, source.position, event))
    _shipped_first(first, moved, shipped, hints)
    placed: set[tuple[str, str | None]] = set()  # (order_id, line_id), and (order_id, None)
    for _, _, event in out:
        order_id = event["data"]["order_id"]
        placed.add((order_id, None))
        placed.update((order_id, line["line_id"]) for line in event["data"]["lines"])
    claimed: set[tuple[str, str]] = set()  # order lines that a cancellation released
    for source in sorted(sources.values(), key=lambda s: s.position):
        if source.type == "order.placed":
            continue
        if source.type == "order.cancelled":
            event = _cancellation(source, placed, shipped, hints, claimed)
            if event is not None:
                out.append((source.occurred_at, source.position, event))
            continue
        for event in _others(source, placed):
            out.append((source.occurred_at, source.position, event))
    out.sort(key=lambda t: (t[0], t[1]))
    return [event for _, _, event in out]


def _placement(
    source: _Source,
    shipped: dict[tuple[str, str], int],
    shipped_lines: dict[tuple[str, str, str], list[str]],
    released: dict[tuple[str, str, str], list[tuple[str, int]]],
    hints: OrderLines,
) -> dict[str, Any] | None:
    lines: list[dict[str, Any]] = []
    order_id: str | None = None
    location = ""
    for row in sorted(source.rows, key=lambda r: r.line_no):
        detail = row.detail or {}
        if row.kind != "commitment" or row.committed <= 0 or "line_id" not in detail:
            continue
        order_id, location = str(detail.get("order_id", row.reference)), row.location
        named = str(detail["line_id"])  # the last line of the item in the order
        hint = {
            line_id: ordered
            for line_id, (sku, at, ordered, _) in hints.get(order_id, {}).items()
            if sku == row.sku and at == row.location and ordered > 0
        }
        if named in hint and sum(hint.values()) == row.committed:
            ids = [*sorted((i for i in hint if i != named), key=_natural), named]
            lines += [{"line_id": i, "sku": row.sku, "qty": hint[i]} for i in ids]
            continue
        qty: dict[str, int] = {}
        for line_id in shipped_lines.get((order_id, row.sku, row.location), []):
            if shipped[(order_id, line_id)] > 0:
                qty[line_id] = shipped[(order_id, line_id)]
        for line_id, units in released.get((order_id, row.sku, row.location), []):
            qty[line_id] = qty.get(line_id, 0) + units  # shipped before, if at all: the rest
        left = row.committed - sum(qty.values())
        if left > 0 or named not in qty:
            qty[named] = qty.get(named, 0) + max(left, 0)
        ids = [*sorted((i for i in qty if i != named), key=_natural), named]
        lines += [{"line_id": i, "sku": row.sku, "qty": qty[i]} for i in ids if qty[i] > 0]
    if not lines or order_id is None:
        return None
    return {
        "event_id": source.event_id,
        "type": "order.placed",
        "schema_version": 1,
        "occurred_at": _time(source.occurred_at),
        "data": {"order_id": order_id, "location": location, "lines": lines},
    }


def _others(source: _Source, placed: set[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """The shipments or adjustment an event's entries record."""
    envelope = {
        "event_id": source.event_id,
        "schema_version": 1,
        "occurred_at": _time(source.occurred_at),
    }
    if source.type in ("scan.shipped", "order.fulfilled"):
        units: dict[tuple[str, str, str, str], int] = defaultdict(int)
        for row in source.rows:
            detail = row.detail or {}
            if row.kind != "shipment" or (detail.get("order_id"), None) not in placed:
                continue
            line_id = str(detail.get("line_id", ""))
            if not line_id.startswith("@") and (detail["order_id"], line_id) not in placed:
                continue  # a line the placement read does not hold
            units[(detail["order_id"], line_id, row.sku, row.location)] -= row.on_hand
        out = []
        for n, ((order_id, line_id, sku, location), qty) in enumerate(units.items()):
            if qty <= 0:
                continue
            data = {"sku": sku, "location": location, "qty": qty, "order_id": order_id}
            if line_id and not line_id.startswith("@"):  # "@sku": shipped without a line id
                data["line_id"] = line_id
            event_id = (
                source.event_id if not n else str(uuid.uuid5(NAMESPACE, f"{source.event_id}/{n}"))
            )
            out.append({**envelope, "event_id": event_id, "type": "scan.shipped", "data": data})
        return out
    if source.type == "scan.adjusted":
        out = []
        for row in source.rows:
            if row.kind != "adjustment":
                continue
            reason = (row.detail or {}).get("reason")
            qty = {
                "lost": -row.on_hand,
                "expired": -row.on_hand,
                "write_off": -row.on_hand,
                "found": row.on_hand,
                "correction": row.on_hand,
                "damaged": row.damaged,  # less, if units written off before were netted
            }.get(str(reason), 0)
            if qty == 0 or (qty < 0 and reason != "correction"):
                continue
            data = {"sku": row.sku, "location": row.location, "qty": qty, "reason": reason}
            out.append({**envelope, "type": "scan.adjusted", "data": data})
        return out
    return []


def _shipped_first(
    first: dict[str, dict[str, Any]],
    moved: dict[tuple[str, str], tuple[str, str, int]],
    shipped: dict[tuple[str, str], int],
    hints: OrderLines,
) -> None:
    """Add to each order's first placement the lines the ledger had seen shipped before it:
    their shipment committed nothing (the line was not placed yet) and the placement then had
    nothing to commit for them, so their only entries are their shipments."""
    known = {(o, line["line_id"]) for o, e in first.items() for line in e["data"]["lines"]}
    changed: set[str] = set()
    for (order_id, line_id), (sku, location, units) in moved.items():
        event = first.get(order_id)
        if (
            event is None
            or units <= 0
            or shipped[(order_id, line_id)] != 0
            or (order_id, line_id) in known
            or line_id.startswith("@")
            or event["data"]["location"] != location
        ):
            continue
        hint = hints.get(order_id, {}).get(line_id)
        qty = hint[2] if hint is not None and hint[0] == sku and hint[2] > 0 else units
        event["data"]["lines"].append({"line_id": line_id, "sku": sku, "qty": qty})
        changed.add(order_id)
    for order_id in changed:  # each item's lines together, in their natural order
        lines = first[order_id]["data"]["lines"]
        items = list(dict.fromkeys(line["sku"] for line in lines))
        lines.sort(key=lambda line: (items.index(line["sku"]), _natural(line["line_id"])))


def _cancellation(
    source: _Source,
    placed: set[tuple[str, str | None]],
    shipped: dict[tuple[str, str], int],
    hints: OrderLines,
    claimed: set[tuple[str, str]],
) -> dict[str, Any] | None:
    """The cancellation an event's release entries record. A release entry names the last line
    of its item that the cancellation released; with the order's lines known (``hints``), the
    lines before it that were cancelled and make up the units released are listed too."""
    cancelled: str | None = None
    line_ids: list[str] = []
    for row in source.rows:
        detail = row.detail or {}
        order_id = detail.get("order_id")
        if row.kind != "release" or (order_id, None) not in placed or row.committed >= 0:
            continue
        cancelled, named = str(order_id), str(detail["line_id"])
        open_units = {
            line_id: ordered - max(shipped.get((cancelled, line_id), 0), 0)
            for line_id, (sku, at, ordered, was_cancelled) in hints.get(cancelled, {}).items()
            if sku == row.sku
            and at == row.location
            and was_cancelled
            and (cancelled, line_id) not in claimed
            and _natural(line_id) <= _natural(named)
        }
        picked, units = [], 0
        for line_id in sorted(open_units, key=_natural, reverse=True):
            if open_units[line_id] <= 0:
                continue
            picked.append(line_id)
            units += open_units[line_id]
            if units >= -row.committed:
                break
        if named not in picked or units != -row.committed:
            picked = [named]
        claimed.update((cancelled, line_id) for line_id in picked)
        line_ids += picked
    if cancelled is None:
        return None
    return {
        "event_id": source.event_id,
        "type": "order.cancelled",
        "schema_version": 1,
        "occurred_at": _time(source.occurred_at),
        "data": {
            "order_id": cancelled,
            "lines": [{"line_id": i} for i in sorted(set(line_ids), key=_natural)],
        },
    }


def months_before(at: datetime, months: int) -> datetime:
    """``at`` less ``months`` calendar months (the day kept, or the month's last)."""
    month = at.month - 1 - months
    year, month = at.year + month // 12, month % 12 + 1
    for day in range(at.day, 0, -1):
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


class LedgerUnavailableError(Exception):
    """The database could not be reached or read."""


ReadProgress = Callable[[int, int], None]


async def read_ledger(
    dsn: str,
    months: int | None = None,
    progress: ReadProgress | None = None,
    chunk: int = CHUNK,
) -> tuple[list[LedgerRow], datetime | None, OrderLines]:
    """The entries of :data:`SOURCES` (of the last ``months`` months of event time, by
    ``occurred_at``, if given), by position, ``chunk`` rows at a time (keyset pagination:
    no transaction held open over the read); the start of the range, if any; and the lines of
    the :func:`unresolved_orders` as the ledger's order state holds them.
    ``progress(done, total)`` goes by position."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise LedgerUnavailableError(f"cannot connect to the ledger's database: {exc}") from exc
    try:
        await conn.set_type_codec(
            "jsonb",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )
        bounds = await conn.fetchrow("SELECT min(position), max(position) FROM ledger_entries")
        low, high = (bounds[0], bounds[1]) if bounds is not None else (None, None)
        if low is None or high is None:
            return [], None, {}
        since: datetime | None = None
        if months is not None:
            latest = await conn.fetchval(
                "SELECT max(occurred_at) FROM ledger_entries WHERE source_type = 'order.placed'"
            )
            if latest is None:
                return [], None, {}
            since = months_before(latest, months)
        query = (
            f"SELECT {COLUMNS} FROM ledger_entries WHERE position > $1"
            " AND source_type = ANY($2::text[]) AND ($3::timestamptz IS NULL OR occurred_at >= $3)"
            " ORDER BY position LIMIT $4"
        )
        out: list[LedgerRow] = []
        after = low - 1
        total = high - after
        while True:
            rows = await conn.fetch(query, after, list(SOURCES), since, chunk)
            for r in rows:
                out.append(
                    LedgerRow(
                        r["position"],
                        str(r["source_event_id"]),
                        r["line_no"],
                        r["sku"],
                        r["location"],
                        r["kind"],
                        r["on_hand"],
                        r["committed"],
                        r["damaged"],
                        r["occurred_at"],
                        r["source_type"],
                        r["reference"],
                        r["detail"],
                    )
                )
            if len(rows) < chunk:
                break
            after = rows[-1]["position"]
            if progress:
                progress(min(after - low + 1, total), total)
        if progress:
            progress(total, total)
        return out, since, await _order_lines(conn, sorted(unresolved_orders(out)), chunk)
    except (OSError, asyncpg.PostgresError) as exc:
        raise LedgerUnavailableError(f"cannot read the ledger: {exc}") from exc
    finally:
        await conn.close()


async def _order_lines(conn: asyncpg.Connection, orders: list[str], chunk: int) -> OrderLines:
    """The orders' lines from ``ledger_orders`` (none if the role may not read it)."""
    out: dict[str, dict[str, tuple[str | None, str | None, int, bool]]] = {}
    try:
        for start in range(0, len(orders), chunk):
            rows = await conn.fetch(
                "SELECT order_id, state FROM ledger_orders WHERE order_id = ANY($1::text[])",
                orders[start : start + chunk],
            )
            for r in rows:
                raw = r["state"]  # json (not jsonb): text unless a codec is set
                state = OrderState.from_json(orjson.loads(raw) if isinstance(raw, str) else raw)
                out[r["order_id"]] = {
                    line_id: (line.sku, line.location, line.ordered, line.cancelled)
                    for line_id, line in state.lines.items()
                }
    except asyncpg.InsufficientPrivilegeError:
        return {}
    return out


def point_figures(config: SimConfig, result: SimResult) -> dict[str, Any]:
    """A run's summary, and its figures before and from the config's split if it has one."""
    return result.summary() | frontier.periods(result, config.report_from)


def run_points(
    events: list[dict[str, Any]],
    base: SimConfig,
    policies: Sequence[str],
    jobs: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One closed-loop run per policy at its default setting (``base``'s), in ``jobs``
    processes; the figures in the policies' order."""
    configs = [replace(base, policy=p) for p in policies]
    return frontier.run_all(events, configs, point_figures, jobs, progress)


@dataclass(frozen=True)
class Options:
    """What ``stockledger backtest`` was asked for (its options, in the same names)."""

    policies: tuple[str, ...] = POLICIES
    months: int | None = None
    point: bool = False
    split_months: int = 4
    jobs: int = 2
    json_path: Path = Path("backtest-results.json")
    plot: Path = Path("backtest-frontier.png")
    lead_time_days: int = 7
    review_days: int = 7
    backorders: bool = False


def parse_policies(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--policy`` values (repeated, or comma lists) as policy names; none given: all four."""
    names = [n.strip() for v in values or () for n in v.split(",") if n.strip()]
    if not names or "all" in names:
        return POLICIES
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {', '.join(unknown)}: choose from {', '.join(POLICIES)}")
    return tuple(dict.fromkeys(names))


def load(
    dsn: str, months: int | None, console: Console
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The ledger read with a progress bar, and the events rebuilt from it."""
    with Progress(
        TextColumn("reading the ledger"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("positions"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("ledger", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        rows, since, order_lines = asyncio.run(read_ledger(dsn, months, step))
    events = events_from_entries(rows, order_lines)
    return events, since


def backtest(
    dsn: str,
    options: Options,
    console: Console,
    reader: Callable[[str, int | None, Console], Any] = load,
) -> dict[str, Any]:
    """Read the ledger, rebuild its events and run the closed loop; print and write the
    figures, and return what the JSON holds. Raises SystemExit with a message when the ledger
    cannot be read or holds no orders in the range."""
    try:
        events, since = reader(dsn, options.months, console)
    except LedgerUnavailableError as exc:
        raise SystemExit(
            f"{exc}\n(is PostgreSQL running, and DATABASE_URL the suite's? `make up` starts it)"
        ) from exc
    orders = sum(e["type"] == "order.placed" for e in events)
    where = f"in the last {options.months} months" if options.months else ""
    if not orders:
        raise SystemExit(f"the ledger holds no orders {where}".strip() + ": nothing to backtest")
    first, last = events[0]["occurred_at"][:10], events[-1]["occurred_at"][:10]
    console.print(
        f"{len(events):,} events rebuilt from the ledger ({orders:,} orders, {first} to {last})"
    )
    base = SimConfig(
        lead_time_days=options.lead_time_days,
        review_days=options.review_days,
        backorders=options.backorders,
    )
    split = frontier.split_day(events, options.split_months) if options.split_months else None
    if split is not None and split > date.fromisoformat(last):
        console.print(
            f"[yellow]no split: the ledger's events end before {split}"
            f" ({options.split_months} months after the first)[/]"
        )
        split = None
    span = f"ledger {first} to {last}"
    title = f"{span}: lead time {options.lead_time_days} d"
    if options.backorders:
        title += ", backorders"
    settings = {
        "months": str(options.months),
        "policies": ",".join(options.policies),
        "lead_time_days": str(options.lead_time_days),
        "review_days": str(options.review_days),
        "backorders": str(options.backorders),
        "split_months": str(options.split_months),
        "since": since.isoformat() if since else "None",
    }
    if not options.point:
        return report.frontier_report(
            events,
            base,
            options.policies,
            split=split,
            jobs=options.jobs,
            plot=options.plot,
            json_path=options.json_path,
            title=title,
            options=settings,
            console=console,
        )
    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("runs", total=len(options.policies), last="")

        def step(figures: dict[str, Any]) -> None:
            bar.update(
                task,
                advance=1,
                last=f"{figures['policy']}: fill {figures['line_fill_rate']:.3f}",
            )

        results = run_points(
            events, replace(base, report_from=split), options.policies, options.jobs, step
        )
    console.print(report.results_table(results, f"backtest on the {title}"))
    written = {"options": settings, "split": str(split) if split else None, "results": results}
    options.json_path.write_text(orjson.dumps(written, option=orjson.OPT_INDENT_2).decode() + "\n")
    console.print(f"written: {options.json_path}")
    return written
