"""``python -m simulation.demo``: the order history replayed through the running suite, live.

Orders, shipments, cancellations and staff write-offs from the history are published to the
input topics at an accelerated pace (``--speed`` days of history per second), after an opening
stock (two weeks of each item's early demand). Simulated warehouses answer the replenisher:
each request is confirmed at once (a transfer leaves its source at once) and received when it is
due in history time. A live view shows the pace, the lag and the stock's health; Ctrl-C stops
cleanly; at the end a summary is printed and a plot of units held and fill rate is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from bench.endtoend import LagProbe
from bench.retail import CSV_HELP, DATA, RetailFormatError, retail_events
from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import ORDERS, REPLENISHMENT_REQUESTS, REPLENISHMENT_UPDATES, SCANS

from .closed_loop import SimConfig, SimResult, baseline_demand, simulate

FIRST_MONTH = timedelta(days=30)

MAX_LAG = 20_000  # messages a service may be behind before the history's clock waits
NAMESPACE = uuid.UUID("2f7c1d9e-5b3a-4e61-8c0f-9a4d2e6b1c73")
TOPIC_OF = {"scan": SCANS, "order": ORDERS, "replenishment": REPLENISHMENT_UPDATES}


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _event(kind: str, identity: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{kind}/{identity}")),
        "type": kind,
        "schema_version": 1,
        "occurred_at": _rfc3339(at),
        "source": "demo",
        "data": data,
    }


def _key(event: dict[str, Any]) -> bytes:
    d = event["data"]
    if "order_id" in d and event["type"].startswith("order."):
        return str(d["order_id"]).encode()
    if "request_id" in d:
        return str(d["request_id"]).encode()
    return f"{d.get('location') or d.get('to_location')}|{d['sku']}".encode()


def history(csv: Path, rows: int | None, opening_days: int) -> list[dict[str, Any]]:
    """The history's events with the demo's own opening stock instead of the replay's."""
    return with_opening_stock(
        [orjson.loads(v) for _, _, v in retail_events(csv, rows=rows)], opening_days
    )


def with_opening_stock(events: list[dict[str, Any]], opening_days: int) -> list[dict[str, Any]]:
    """The events (in time order) without the replay's opening stock, and with the demo's: each
    item receives ``opening_days`` of its early demand an hour before its first order."""
    events = [
        e for e in events if not (e["type"] == "scan.received" and "reference" not in e["data"])
    ]
    opening: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    daily = baseline_demand(events, 28)
    for e in events:
        if e["type"] != "order.placed":
            continue
        for line in e["data"]["lines"]:
            item = (line["sku"], e["data"]["location"])
            if item in seen:
                continue
            seen.add(item)
            qty = max(1, round(daily.get(item, 0) * opening_days))
            opening.append(
                _event(
                    "scan.received",
                    f"opening/{item}",
                    _at(e) - timedelta(hours=1),
                    {"sku": item[0], "location": item[1], "qty": qty},
                )
            )
    merged = sorted(events + opening, key=lambda e: e["occurred_at"])
    return merged


@dataclass
class Progress:
    published: int = 0
    requests: int = 0
    received: int = 0
    transfers: int = 0
    clock: datetime | None = None
    started: float = field(default_factory=time.perf_counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    latest: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, float] = field(default_factory=dict)
    waiting: bool = False


class Demo:
    def __init__(self, settings: Settings, events: list[dict[str, Any]], speed: float) -> None:
        self.settings = settings
        self.events = events
        self.speed = speed
        self.p = Progress()
        self.lags: dict[str, int] = {}
        self.stopping = asyncio.Event()
        self.interrupted = False
        self.due: list[tuple[datetime, int, dict[str, Any]]] = []  # warehouse receipts
        self.seq = itertools.count()
        self.producer = AIOKafkaProducer(
            **client_options(settings),
            enable_idempotence=True,
            linger_ms=10,
        )

    def interrupt(self) -> None:
        self.interrupted = True
        self.stopping.set()

    def topic(self, event: dict[str, Any]) -> str:
        return self.settings.topic_prefix + TOPIC_OF[event["type"].split(".")[0]]

    async def send(self, event: dict[str, Any]) -> None:
        await self.producer.send(self.topic(event), orjson.dumps(event), key=_key(event))
        self.p.published += 1

    def behind(self) -> bool:
        """Whether a service of the suite is more than ``MAX_LAG`` messages behind: the
        history's clock then waits for it, so that the suite decides in time, as it would live
        (a replay faster than the suite would otherwise show stockouts of its own making)."""
        return max(self.lags.values(), default=0) > MAX_LAG

    async def publish(self) -> None:
        """The history at its pace, with the warehouses' receipts merged in as they fall due;
        the clock stops while the suite is behind."""
        start = _at(self.events[0])
        history_days = 0.0
        last = time.perf_counter()
        for event in self.events:
            at = _at(event)
            while not self.stopping.is_set():
                now = time.perf_counter()
                self.p.waiting = self.behind()
                if not self.p.waiting:
                    history_days += (now - last) * self.speed
                last = now
                clock = start + timedelta(days=history_days)
                self.p.clock = clock
                await self.release_due(min(clock, at))
                if clock >= at:
                    break
                await asyncio.sleep(min(0.05, (at - clock).total_seconds() / 86400 / self.speed))
            if self.stopping.is_set():
                return
            await self.send(event)
        await self.release_due(datetime.max.replace(tzinfo=UTC))
        await self.producer.flush()

    async def release_due(self, until: datetime) -> None:
        while self.due and self.due[0][0] <= until:
            _, _, event = heapq.heappop(self.due)
            await self.send(event)
            self.p.received += 1

    async def warehouses(self) -> None:
        """Confirm every request at once and deliver it when it is due (in history time)."""
        consumer = AIOKafkaConsumer(
            self.settings.topic_prefix + REPLENISHMENT_REQUESTS,
            **client_options(self.settings),
            group_id=f"demo-warehouses-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        await self.answer(orjson.loads(record.value))
        finally:
            await consumer.stop()

    async def answer(self, request: dict[str, Any]) -> None:
        d = request["data"]
        at = _at(request)
        needed_by = datetime.fromisoformat(d["needed_by"].replace("Z", "+00:00"))
        rid, item = d["request_id"], {"sku": d["sku"], "location": d["location"]}
        self.p.requests += 1
        if d["kind"] == "transfer":
            self.p.transfers += 1
            await self.send(
                _event(
                    "scan.transferred",
                    rid,
                    at,
                    {
                        "sku": d["sku"],
                        "from_location": d["from_location"],
                        "to_location": d["location"],
                        "qty": d["qty"],
                        "transfer_id": rid,
                    },
                )
            )
        else:
            await self.send(
                _event(
                    "replenishment.confirmed", rid, at, {"request_id": rid, **item, "qty": d["qty"]}
                )
            )
        receipt = _event(
            "scan.received",
            f"receipt/{rid}",
            needed_by,
            {**item, "qty": d["qty"], "reference": rid},
        )
        heapq.heappush(self.due, (needed_by, next(self.seq), receipt))
        self.p.latest = (
            [
                {"at": d["needed_by"][:10], **item, "qty": d["qty"], "kind": d["kind"]},
                *self.p.latest,
            ]
        )[:5]

    async def watch(self, pool: asyncpg.Pool, probe: LagProbe) -> None:
        """Samples stock health and the services' lag every second (the replenisher plans by
        itself, in the history's event time, however fast it is replayed)."""
        while not self.stopping.is_set():
            lags = await probe.sample()
            unpublished = await pool.fetchval(
                "SELECT count(*) FROM replenishment_requests WHERE published_at IS NULL"
            )
            self.lags = {
                k: lags[k] for k in ("ledger", "relay", "projector", "replenisher") if k in lags
            } | {"requests": int(unpublished)}
            row = await pool.fetchrow(
                "SELECT coalesce(sum(greatest(on_hand, 0)), 0) AS held,"
                " count(*) FILTER (WHERE available < 0) AS oversold,"
                " count(*) FILTER (WHERE available <= 0) AS stockouts, count(*) AS items,"
                " (SELECT count(*) FROM processed_events) AS ledger"
                " FROM stock_levels"
            )
            open_requests = await pool.fetchval(
                "SELECT count(*) FROM replenishment_requests WHERE status IN ('open', 'confirmed')"
            )
            assert row is not None
            self.p.health = {**dict(row), "open_requests": open_requests}
            if self.p.clock is not None:
                self.p.samples.append(
                    {"clock": self.p.clock, "held": row["held"], "oversold": row["oversold"]}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)

    def view(self) -> Group:
        p, h = self.p, self.p.health
        elapsed = max(time.perf_counter() - p.started, 1e-6)
        table = Table(title="stockledger demo: Online Retail history, live", show_header=False)
        table.add_row("history time", p.clock.strftime("%Y-%m-%d %H:%M") if p.clock else "-")
        table.add_row("events published", f"{p.published:,} ({p.published / elapsed:,.0f}/s)")
        table.add_row(
            "behind (messages)",
            ", ".join(f"{k} {v:,}" for k, v in self.lags.items())
            + ("  (history paused: waiting for the suite)" if p.waiting else ""),
        )
        table.add_row("items", f"{int(h.get('items', 0)):,}")
        table.add_row("stockouts (available ≤ 0)", f"{int(h.get('stockouts', 0)):,}")
        table.add_row("oversold (available < 0)", f"{int(h.get('oversold', 0)):,}")
        table.add_row("units on hand", f"{int(h.get('held', 0)):,}")
        table.add_row(
            "requests: raised / received / open",
            f"{p.requests:,} / {p.received:,} / {int(h.get('open_requests', 0)):,}",
        )
        latest = Table(title="latest requests", show_lines=False)
        for column in ("needed by", "sku", "location", "qty", "kind"):
            latest.add_column(column)
        for r in p.latest:
            latest.add_row(r["at"], r["sku"], r["location"], str(r["qty"]), r["kind"])
        return Group(
            table,
            latest,
            f"API http://127.0.0.1:{self.settings.http_port}/v1/stock?sku="
            f"...  metrics http://127.0.0.1:8081/metrics  Ctrl-C stops",
        )


async def fill_rate_by_day(pool: asyncpg.Pool) -> list[tuple[str, float, int]]:
    """Per day: the share of order lines that available stock covered when they were placed."""
    rows = await pool.fetch(
        "SELECT day, avg((before >= committed)::int) AS filled, count(*) AS lines FROM ("
        " SELECT occurred_at::date AS day, kind, committed, coalesce(sum(on_hand - committed"
        "   - damaged - quality_control) OVER (PARTITION BY sku, location"
        "   ORDER BY occurred_at, position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
        "   AS before"
        " FROM ledger_entries) e WHERE kind = 'commitment' AND committed > 0"
        " GROUP BY day ORDER BY day"
    )
    return [(str(r["day"]), float(r["filled"]), int(r["lines"])) for r in rows]


def plot(
    samples: list[dict[str, Any]],
    fill: list[tuple[str, float, int]],
    path: Path,
    baseline: SimResult | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (held, rate) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    held.plot(
        [s["clock"] for s in samples], [s["held"] for s in samples], color="tab:blue", label="demo"
    )
    held.set_ylabel("units on hand")
    held.set_title("stockledger demo: Online Retail history")
    days = [datetime.fromisoformat(d).replace(tzinfo=UTC) for d, _, _ in fill]
    rate.plot(days, [f for _, f, _ in fill], color="tab:green", label="demo")
    if baseline is not None:
        at = [datetime.fromisoformat(d["day"]).replace(tzinfo=UTC) for d in baseline.daily]
        held.plot(
            at,
            [d["units_held"] for d in baseline.daily],
            color="tab:gray",
            linestyle="--",
            label="static baseline (simulated)",
        )
        previous = {"lines": 0, "filled": 0}
        daily_fill = []
        for d in baseline.daily:
            lines = d["lines"] - previous["lines"]
            daily_fill.append((d["filled"] - previous["filled"]) / lines if lines else None)
            previous = d
        rate.plot(
            [a for a, f in zip(at, daily_fill, strict=True) if f is not None],
            [f for f in daily_fill if f is not None],
            color="tab:gray",
            linestyle="--",
            linewidth=0.8,
            label="static baseline (simulated)",
        )
        held.legend(loc="upper left")
        rate.legend(loc="lower left")
    rate.set_ylabel("line fill rate (daily)")
    rate.set_ylim(0, 1.05)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def after_first_month(
    samples: list[dict[str, Any]], fill: list[tuple[str, float, int]], start: datetime
) -> tuple[float | None, float | None]:
    """Line fill and average units on hand from a month after the history's start on."""
    cut = start + FIRST_MONTH
    lines = sum(n for d, _, n in fill if d >= cut.date().isoformat())
    filled = sum(f * n for d, f, n in fill if d >= cut.date().isoformat())
    return (
        filled / lines if lines else None,
        over_history_time(s for s in samples if s["clock"] >= cut),
    )


def over_history_time(samples: Iterable[dict[str, Any]]) -> float | None:
    """The average units on hand over the history's time: a sample (taken each second of the
    wall clock) counts for the history time until the next one. So the samples taken while the
    history's clock waits for the suite, and after its end while the suite settles, count for
    nothing; counted alike, they weighed the average towards those moments (the end's stock,
    the largest, most of all)."""
    taken = sorted(samples, key=lambda s: s["clock"])
    if not taken:
        return None
    held = [float(s["held"]) for s in taken]  # PostgreSQL's sum of integers is a numeric
    weights: list[float] = [
        (b["clock"] - a["clock"]).total_seconds() for a, b in itertools.pairwise(taken)
    ]
    total = sum(weights)
    if total <= 0:
        return sum(held) / len(held)
    return sum(h * w for h, w in zip(held, weights, strict=False)) / total


@dataclass(frozen=True)
class LiveFigures:
    """The suite's own figures at the end of a demo."""

    published: int
    lines: int
    filled: float  # order lines that available stock covered when they were placed
    fill_later: float | None  # line fill after the first month
    held_later: float | None  # average units on hand after the first month
    requests: int
    transfers: int
    stockouts: int


def summary(
    live: LiveFigures,
    policy: str,
    own: SimResult | None,
    baseline: SimResult | None,
    cut: date,
) -> Table:
    """The demo's figures beside ``policy`` and the ``static`` baseline simulated on the same
    rows (their columns empty when not simulated); "after the first month" is from ``cut`` on.
    Requests are shown with the transfers among them, live and simulated alike."""
    table = Table(title="summary")
    table.add_column("figure")
    table.add_column("demo (the suite, live)", justify="right")
    table.add_column(f"{policy} (simulated)", justify="right")
    table.add_column("static baseline (simulated)", justify="right")
    sims = [(r, r.period(cut)) if r else None for r in (own, baseline)]

    def row(figure: str, shown: str, simulated: Callable[[SimResult, dict[str, Any]], str]) -> None:
        table.add_row(figure, shown, *(simulated(*s) if s else "" for s in sims))

    row("events published", f"{live.published:,}", lambda r, p: "")
    row("order lines", f"{live.lines:,}", lambda r, p: f"{r.order_lines:,}")
    row(
        "line fill rate",
        f"{live.filled / live.lines:.3f}" if live.lines else "-",
        lambda r, p: f"{r.fill_rate:.3f}",
    )
    row(
        "line fill rate after the first month",
        f"{live.fill_later:.3f}" if live.fill_later is not None else "-",
        lambda r, p: f"{p['line_fill_rate']:.3f}",
    )
    row(
        "average units on hand after the first month",
        f"{live.held_later:,.0f}" if live.held_later is not None else "-",
        lambda r, p: f"{p['average_units_held']:,.0f}",
    )
    row(
        "requests raised (transfers)",
        f"{live.requests:,} ({live.transfers:,})",
        lambda r, p: f"{r.requests:,} ({r.transfers:,})",
    )
    row("stockouts now", f"{live.stockouts:,}", lambda r, p: "")
    return table


async def run(args: argparse.Namespace) -> None:
    settings = Settings()
    console = Console()
    with console.status("reading the order history"):
        try:
            events = history(args.csv, args.rows, args.opening_days)
        except RetailFormatError as error:
            raise SystemExit(str(error)) from None
    console.print(
        f"{len(events):,} events from {events[0]['occurred_at'][:10]} to "
        f"{events[-1]['occurred_at'][:10]}, {args.speed:g} days of history per second"
    )
    demo = Demo(settings, events, args.speed)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, demo.interrupt)
    pool = await asyncpg.create_pool(settings.database_dsn(), min_size=1, max_size=3)
    probe = await LagProbe(settings, settings.database_dsn(), replenisher=True).start()
    await demo.producer.start()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(demo.warehouses())
            tasks.create_task(demo.watch(pool, probe))
            publisher = tasks.create_task(demo.publish())
            with Live(demo.view(), console=console, refresh_per_second=4) as live:
                while not publisher.done():
                    live.update(demo.view())
                    await asyncio.sleep(0.25)
                # let the suite catch up with what was published (at most three minutes)
                for _ in range(720):
                    if demo.stopping.is_set() or (
                        demo.lags and not any(demo.lags.values()) and not demo.due
                    ):
                        break
                    live.update(demo.view())
                    await asyncio.sleep(0.25)
                await asyncio.sleep(1)
                live.update(demo.view())
            demo.stopping.set()
        fill = await fill_rate_by_day(pool)
    finally:
        await demo.producer.stop()
        await probe.close()
        await pool.close()
    lines = sum(n for _, _, n in fill)
    filled = sum(f * n for _, f, n in fill)
    baseline: SimResult | None = None
    own: SimResult | None = None
    if not demo.interrupted:
        # both in the demo's world: every line taken, a short one backordered
        with console.status("simulating the static baseline on the same history"):
            baseline = await asyncio.to_thread(
                simulate,
                events,
                SimConfig("static", opening_days=args.opening_days, backorders=True),
            )
        with console.status(f"simulating {settings.default_policy} on the same history"):
            own = await asyncio.to_thread(
                simulate,
                events,
                SimConfig(
                    settings.default_policy,
                    opening_days=args.opening_days,
                    target_fill=settings.target_fill,
                    budget_units=settings.stock_budget_units,
                    backorders=True,
                ),
            )
    start = _at(events[0])
    fill_later, held_later = after_first_month(demo.p.samples, fill, start)
    figures = LiveFigures(
        published=demo.p.published,
        lines=lines,
        filled=filled,
        fill_later=fill_later,
        held_later=held_later,
        requests=demo.p.requests,
        transfers=demo.p.transfers,
        stockouts=int(demo.p.health.get("stockouts", 0)),
    )
    cut = start.date() + FIRST_MONTH
    console.print(summary(figures, settings.default_policy, own, baseline, cut))
    console.print(
        "The demo's orders are backordered (every line is taken; a line counts as filled when"
        " the stock available just before it covered it), and so are the simulated columns'"
        " (`python -m simulation --backorders`: the services' rules in one process, deciding"
        " once a day). `python -m simulation --frontier` compares the policies."
    )
    if demo.p.samples and fill:
        plot(demo.p.samples, fill, args.plot, baseline)
        console.print(f"plot: {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulation.demo", description=__doc__)
    parser.add_argument("--speed", type=float, default=2.0, help="days of history per second")
    parser.add_argument(
        "--csv",
        type=Path,
        default=DATA,
        help=CSV_HELP,
    )
    parser.add_argument("--rows", type=int, help="replay only the first ROWS rows")
    parser.add_argument("--opening-days", type=int, default=14, help="opening stock, in days")
    parser.add_argument("--plot", type=Path, default=Path("demo.png"), help="plot file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
