"""The closed loop through the suite's own services: ``python -m simulation --through-stack``.

Each policy runs in a scratch database and topics of its own, with the ledger, its relay, the
projector and the replenisher as separate processes, as the local stack runs them (Kafka and
PostgreSQL must be up: ``make up`` or ``deploy/scripts/stack.sh infra``). History time advances a
day at a time, with no wall-clock pacing: the day's events and the warehouses' receipts that fall
due are published, then the driver waits until every service has caught up and every request
raised has been answered, and only then goes on to the next day.

It differs from the in-process closed loop (``simulation.closed_loop``) where the services do:

- Orders are backordered, not lost: every line is committed. A line counts as filled when the
  stock available just before it covered it (as the demo reports it).
- The replenisher decides on every ledger entry, as in production, not once a day; it plans
  in the history's event time, as the in-process loop does (``lines`` from an item's first
  line; ``normal`` gets no request for an item without two weeks of history to forecast from).
- Orders and scans travel on different topics, so within a day the ledger may apply them in a
  different order from one run to the next, and the figures can differ slightly between runs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.endtoend import LagProbe, Services
from bench.scratch import scratch_stack
from services.replenisher.policy import Policy
from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import REPLENISHMENT_REQUESTS, topic_specs

from .closed_loop import SimConfig, _day, baseline_demand, baseline_policy
from .demo import Demo, _at, fill_rate_by_day

SETTLE_TIMEOUT_S = 120.0
LOGS = Path(__file__).resolve().parent.parent / ".local" / "logs"


def item_policies(events: list[dict[str, Any]], config: SimConfig) -> dict[tuple[str, str], Policy]:
    """Per item, the ``static`` or ``min_max`` policy the in-process loop gives it: levels from
    the mean demand of its first ``baseline_days`` (none for ``lines`` and ``normal``: the
    service's default policy applies)."""
    if config.policy in ("lines", "normal"):
        return {}
    return {
        item: baseline_policy(config, daily)
        for item, daily in baseline_demand(events, config.baseline_days).items()
    }


@dataclass
class DayFigures:
    day: str
    units_held: int
    stockouts: int


@dataclass
class StackRun:
    """One policy's run through the stack."""

    policy: str
    days: list[DayFigures] = field(default_factory=list)
    requests: int = 0
    transfers: int = 0
    events: int = 0
    order_lines: int = 0  # commitment entries (one per item of an order): the fill rate's lines
    order_lines_in_ledger: int = 0  # lines the ledger has any entry for
    lines_filled: float = 0.0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        days = max(len(self.days), 1)
        return {
            "policy": self.policy,
            "mode": "through the stack",
            "days": len(self.days),
            "events": self.events,
            "order_lines": self.order_lines,
            "order_lines_in_ledger": self.order_lines_in_ledger,
            "line_fill_rate": round(self.lines_filled / self.order_lines, 4)
            if self.order_lines
            else 0.0,
            "average_units_held": round(sum(d.units_held for d in self.days) / days, 1),
            "requests": self.requests,
            "transfers": self.transfers,
            "stockout_item_days": sum(d.stockouts for d in self.days),
            "seconds": round(self.seconds, 1),
        }


class SteppedLoop(Demo):
    """The demo's publisher and warehouses, stepped a day at a time instead of paced."""

    def __init__(
        self,
        settings: Settings,
        events: list[dict[str, Any]],
        config: SimConfig,
        pool: asyncpg.Pool,
        probe: LagProbe,
        services: Services,
    ) -> None:
        super().__init__(settings, events, speed=1.0)
        self.config = config
        self.pool = pool
        self.probe = probe
        self.services = services
        self.requests = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
        topic = settings.topic_prefix + REPLENISHMENT_REQUESTS
        count = next(s.partitions for s in topic_specs(settings.topic_prefix) if s.name == topic)
        self.request_partitions = [TopicPartition(topic, p) for p in range(count)]
        self.run = StackRun(config.policy)

    async def step_through(self, progress: Callable[[int, int, str], None]) -> StackRun:
        started = time.perf_counter()
        days = [(day, list(group)) for day, group in itertools.groupby(self.events, key=_day)]
        await self.requests.start()
        self.requests.assign(self.request_partitions)
        await self.requests.seek_to_beginning(*self.request_partitions)
        try:
            for n, (day, events) in enumerate(days, 1):
                for event in events:
                    await self.release_due(_at(event))
                    await self.send(event)
                await self.release_due(_end_of(day))
                await self.settle()
                await self.close_day(day)
                progress(n, len(days), day.isoformat())
        finally:
            await self.requests.stop()
        fill = await fill_rate_by_day(self.pool)
        self.run.order_lines = sum(lines for _, _, lines in fill)
        self.run.lines_filled = sum(rate * lines for _, rate, lines in fill)
        self.run.order_lines_in_ledger = await self.pool.fetchval(
            "SELECT count(DISTINCT (detail->>'order_id', detail->>'line_id')) FROM ledger_entries"
            " WHERE kind IN ('commitment', 'shipment')"
        )
        self.run.events = self.p.published
        self.run.requests, self.run.transfers = self.p.requests, self.p.transfers
        self.run.seconds = time.perf_counter() - started
        return self.run

    async def settle(self) -> None:
        """Until nothing moves: every service caught up, every request published, read and
        answered (an answer is published in turn, so the loop goes round again)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            await self.producer.flush()
            self.services.check()
            lags = await self.probe.sample()
            behind = {k: lags[k] for k in ("ledger", "relay", "projector", "replenisher")}
            unpublished = await self.pool.fetchval(
                "SELECT count(*) FROM replenishment_requests WHERE published_at IS NULL"
            )
            answered = await self.answer_requests()
            if not any(behind.values()) and not unpublished and not answered:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the stack did not settle within {SETTLE_TIMEOUT_S:.0f} s: behind {behind},"
                    f" {unpublished} requests unpublished; see the logs in {LOGS}"
                )
            if not answered:
                await asyncio.sleep(0.05)

    async def answer_requests(self) -> int:
        """Answer every request on the topic so far, in a fixed order; how many there were."""
        ends = await self.requests.end_offsets(self.request_partitions)
        requests = []
        while [tp for tp, end in ends.items() if await self.requests.position(tp) < end]:
            batch = await self.requests.getmany(timeout_ms=200)
            requests += [orjson.loads(r.value) for records in batch.values() for r in records]
        for request in sorted(requests, key=lambda r: str(r["data"]["request_id"])):
            await self.answer(request)
        return len(requests)

    async def close_day(self, day: date) -> None:
        row = await self.pool.fetchrow(
            "SELECT coalesce(sum(greatest(on_hand, 0)), 0) AS held,"
            " count(*) FILTER (WHERE available <= 0) AS stockouts FROM stock_levels"
        )
        assert row is not None
        self.run.days.append(DayFigures(day.isoformat(), int(row["held"]), int(row["stockouts"])))


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time()).replace(tzinfo=UTC)


async def run_through_stack(
    events: list[dict[str, Any]],
    config: SimConfig,
    progress: Callable[[int, int, str], None],
    base: Settings | None = None,
) -> StackRun:
    """One policy over the events (the demo's history: opening stock included), in a scratch
    database and topics that are dropped at the end."""
    base = base or Settings()
    LOGS.mkdir(parents=True, exist_ok=True)
    async with scratch_stack(base, keep=False) as (settings, url, tag):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
        try:
            policies = item_policies(events, config)
            if policies:
                await pool.executemany(
                    "INSERT INTO replenishment_policies (sku, location, policy)"
                    " VALUES ($1, $2, $3)",
                    [(s, loc, p.model_dump_json()) for (s, loc), p in sorted(policies.items())],
                )
            services = Services(
                settings,
                LOGS,
                f"simulate-{tag}",
                replenisher=True,
                STOCKLEDGER_DEFAULT_LEAD_TIME_DAYS=str(config.lead_time_days),
                STOCKLEDGER_DEFAULT_REVIEW_DAYS=str(config.review_days),
                STOCKLEDGER_DEFAULT_SERVICE_LEVEL=str(config.service_level),
                STOCKLEDGER_DEFAULT_POLICY="normal" if config.policy == "normal" else "lines",
                STOCKLEDGER_TARGET_FILL=str(config.target_fill),
                STOCKLEDGER_PLAN_EVERY_DAYS=str(config.refresh_days),
                # each day waits for the replenisher: deciding at once keeps the days short
                STOCKLEDGER_REPLENISHER_GATHER_MS="0",
            )
            services.start()
            probe = await LagProbe(settings, url, replenisher=True).start()
            try:
                await services.ready()
                loop = SteppedLoop(settings, events, config, pool, probe, services)
                await loop.producer.start()
                try:
                    return await loop.step_through(progress)
                finally:
                    await loop.producer.stop()
            finally:
                await probe.close()
                services.stop()
        finally:
            await pool.close()
