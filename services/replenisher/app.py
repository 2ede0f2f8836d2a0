"""The replenisher service, from settings: follows the ledger, forecasts, decides, publishes."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared.http import health_app, serve_http
from shared.kafka import (
    Assignment,
    Record,
    batch_consumer,
    commit,
    consume_batches,
    json_values,
    next_offsets,
    producer,
    readiness,
    start_client,
)
from shared.runner import retry, sleep_unless
from shared.settings import Settings
from shared.topics import LEDGER, REPLENISHMENT_REQUESTS

from .adapters.outbox import RequestOutbox
from .adapters.store import ReplenisherStore, line_settings_for
from .forecasting import refresh_forecasts, refresh_reorder_points
from .lines import LineSettings
from .metrics import ReplenisherMetrics
from .planning import is_due, plan_lines, planner_state
from .policy import Policy

log = logging.getLogger(__name__)


def default_policy(settings: Settings) -> Policy:
    return Policy(
        policy=settings.default_policy,
        lead_time_days=settings.default_lead_time_days,
        review_days=settings.default_review_days,
        service_level=settings.default_service_level,
    )


def line_settings(settings: Settings) -> LineSettings:
    return line_settings_for(
        default_policy(settings), settings.target_fill, settings.stock_budget_units
    )


def ledger_consumer(settings: Settings, assignment: Assignment) -> AIOKafkaConsumer:
    """The consumer of ledger entries, its fetch sizes the replenisher's own settings: a fetch is
    held in memory twice while decoded, which at 64 MB made most of the replenisher's peak memory
    while catching up (smaller fetches cost it CPU per entry, see the settings)."""
    return batch_consumer(
        settings,
        [settings.topic_prefix + LEDGER],
        "replenisher",
        assignment,
        fetch_max_bytes=settings.replenisher_fetch_max_bytes,
        max_partition_fetch_bytes=settings.replenisher_partition_fetch_bytes,
    )


def _day(entry: Mapping[str, Any]) -> date:
    return date.fromisoformat(str(entry["occurred_at"])[:10])


async def plan_pass(
    pool: asyncpg.Pool,
    settings: Settings,
    today: date,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Every plan as of the event-time day ``today``: the lines plan, the ``normal`` forecasts
    when any item uses them, and the reorder points the API filters by."""
    policy = default_policy(settings)
    result = await plan_lines(pool, line_settings(settings), today, progress)
    uses_normal = policy.policy == "normal" or await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM replenishment_policies"
        " WHERE policy::jsonb->>'policy' IN ('normal', 'forecast'))"
    )
    if uses_normal:
        forecasts = await refresh_forecasts(pool, policy, today=today)
        result = result | {"forecasts": forecasts["items"], "mean_mae": forecasts["mean_mae"]}
    else:
        await refresh_reorder_points(pool, policy)
    return result


class EventClock:
    """The ledger's event time as the replenisher has seen it: the first and the latest day,
    and the day of the last planning pass."""

    def __init__(self, first: date | None, latest: date | None, planned: date | None) -> None:
        self.first, self.latest, self.planned = first, latest, planned

    def split(self, entries: Sequence[Mapping[str, Any]], every: int) -> tuple[int, date | None]:
        """How many of ``entries`` come before a pass is due, and the day it is due for (None:
        none is due within them). The clock moves over the entries counted."""
        for n, entry in enumerate(entries):
            day = _day(entry)
            first = self.first or day
            latest = max(self.latest or day, day)
            due = is_due(self.planned, first, latest, every)
            if due is not None:
                return n, due
            self.first, self.latest = first, latest
        return len(entries), None


def in_ledger_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch's entries in the ledger's order (by position). A fetch hands them out partition
    by partition; while catching up, one partition's entries can run days ahead of another's,
    and a planning pass would fall due before the other partitions' entries of its day were
    decided on. Each item's entries are on one partition, so their own order is kept."""
    entries.sort(key=_position)
    return entries


def _position(entry: Mapping[str, Any]) -> int:
    return int(entry["position"])


async def in_event_time(
    entries: list[dict[str, Any]],
    clock: EventClock,
    every: int,
    decide: Callable[[list[dict[str, Any]]], Awaitable[bool]],
    plan: Callable[[date], Awaitable[bool]],
) -> bool:
    """Decide on the entries in event time: those before a planning pass falls due, then the
    pass, then the rest, so a replay at any speed and in any batch sizes decides alike. False
    when a step gave up (the service is stopping)."""
    rest = entries
    while rest:
        n, due = clock.split(rest, every)
        if n and not await decide(rest[:n]):
            return False
        if due is not None:
            if not await plan(due):
                return False
            clock.planned = due
        rest = rest[n:]
    return True


class EventTimeReplay:
    """Ledger entries decided on and planned in event time, batch after batch, as the service
    does (without its retries): for replays, tests and benchmarks. ``passes``: the days planned
    for, in order."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, store: ReplenisherStore) -> None:
        self.pool, self.settings, self.store = pool, settings, store
        self.clock = EventClock(None, None, None)
        self.passes: list[date] = []

    async def apply(self, entries: list[dict[str, Any]]) -> bool:
        return await in_event_time(
            entries, self.clock, self.settings.plan_every_days, self._decide, self._plan
        )

    async def _decide(self, part: list[dict[str, Any]]) -> bool:
        await self.store.apply(part)
        return True

    async def _plan(self, day: date) -> bool:
        self.passes.append(day)
        await plan_pass(self.pool, self.settings, day)
        return True


class ReplenisherService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ReplenisherMetrics.create()
        self.stopping = asyncio.Event()
        self.assignment = Assignment()
        self.pool: asyncpg.Pool | None = None
        self.policy = default_policy(settings)

    async def ready(self) -> dict[str, bool]:
        return await readiness(self.pool, self.assignment)

    async def run(self) -> None:
        s = self.settings
        url = s.database_dsn()
        self.pool = await asyncpg.create_pool(url, min_size=1, max_size=s.db_pool_size)
        store = ReplenisherStore(self.pool, self.policy, line_settings(s))
        clock = await self._clock()
        consumer = ledger_consumer(s, self.assignment)
        requests = producer(s)
        await start_client(requests, s)
        await start_client(consumer, s)
        outbox = RequestOutbox(
            url,
            requests,
            s.topic_prefix + REPLENISHMENT_REQUESTS,
            self.metrics,
            session_settings=s.leader_session_settings(),
        )

        generation = self.assignment.generation

        async def handle(records: list[Record]) -> bool:
            nonlocal generation
            if generation != self.assignment.generation:  # partitions moved: what the store
                generation = self.assignment.generation  # remembers of items may be stale
                store.forget_unplannable()
            entries = in_ledger_order(json_values(records))

            # In event time: the entries before a planning pass falls due are decided on, the
            # pass runs, then the rest, so a replay at any speed decides alike.
            async def decide(part: list[dict[str, Any]]) -> bool:
                return (
                    await retry("deciding on a batch", self.stopping, store.apply, part) is not None
                )

            async def plan(day: date) -> bool:
                return await retry("planning", self.stopping, self._plan, day) is not None

            if not await in_event_time(entries, clock, s.plan_every_days, decide, plan):
                return False
            self.metrics.entries_applied.inc(len(entries))
            await commit(consumer, next_offsets(records))
            return True

        # What exists by now (modules, settings, pools, clients) lives as long as the process:
        # frozen, the collector stops walking it at every full collection, which thousands of
        # entries parsed a batch set off often (about a fifth of the Python time parsing and
        # deciding went to it).
        gc.collect()
        gc.freeze()
        log.info("replenisher started")
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    consume_batches(
                        consumer,
                        self.stopping,
                        handle,
                        s.batch_max_records,
                        s.batch_timeout_ms,
                        s.replenisher_gather_ms,
                        aligned=True,
                    )
                )
                tasks.create_task(outbox.run(self.stopping))
                tasks.create_task(self._forecast_on_schedule())
                if s.metrics_port:
                    app = health_app(self.metrics.registry, self.ready)
                    tasks.create_task(serve_http(app, s.http_host, s.metrics_port, self.stopping))
        finally:
            await consumer.stop()
            await requests.stop()
            await self.pool.close()
            log.info("replenisher stopped")

    async def _clock(self) -> EventClock:
        assert self.pool is not None
        state = await planner_state(self.pool)
        row = await self.pool.fetchrow(
            "SELECT min(day) AS first, max(day) AS latest FROM demand_lines"
        )
        assert row is not None
        return EventClock(row["first"], row["latest"], state.planned_for if state else None)

    async def _plan(self, today: date) -> dict[str, float]:
        assert self.pool is not None
        started = time.perf_counter()
        result = await plan_pass(self.pool, self.settings, today)
        self.metrics.forecast_seconds.observe(time.perf_counter() - started)
        self.metrics.forecasts.set(result["items"])
        if "mean_mae" in result:
            self.metrics.forecast_error.set(result["mean_mae"])
        log.info(
            "planned for %s: %d items, expected line fill %.3f, %.0f units, %.1fs",
            today,
            result["items"],
            result["expected_fill"],
            result["expected_units"],
            time.perf_counter() - started,
        )
        return result

    async def _forecast_on_schedule(self) -> None:
        """Gauges and the reorder points the API filters by, refreshed every
        forecast_interval_s (wall clock); the plans themselves follow event time."""
        assert self.pool is not None
        while not await sleep_unless(self.stopping, self.settings.forecast_interval_s):
            try:
                await refresh_reorder_points(self.pool, self.policy)
                await self._gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("refreshing the gauges failed; the next pass will try again")

    async def _gauges(self) -> None:
        assert self.pool is not None
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM replenishment_requests"
            "         WHERE status IN ('open', 'confirmed')) AS open,"
            " (SELECT count(*) FROM replenishment_requests WHERE status IN ('open', 'confirmed')"
            "   AND needed_by < (SELECT max(last) FROM (SELECT max(day) + 1 AS last"
            "   FROM demand_daily) d)) AS overdue,"
            " (SELECT count(*) FROM replenisher_items"
            "   WHERE on_hand - committed - damaged - quality_control < 0) AS oversold,"
            " (SELECT count(*) FROM replenisher_items i JOIN reorder_points r USING (sku, location)"
            "   WHERE i.on_hand - i.committed - i.damaged - i.quality_control + i.incoming"
            "   <= r.reorder_point) AS below"
        )
        assert row is not None
        self.metrics.open_requests.set(row["open"])
        self.metrics.overdue_requests.set(row["overdue"])
        self.metrics.oversold.set(row["oversold"])
        self.metrics.below_reorder_point.set(row["below"])

    def stop(self) -> None:
        self.stopping.set()


def create_service(settings: Settings) -> ReplenisherService:
    return ReplenisherService(settings)
