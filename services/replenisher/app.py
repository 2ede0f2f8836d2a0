"""The replenisher service, from settings: follows the ledger, forecasts, decides, publishes."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

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
from .adapters.store import ReplenisherStore
from .forecasting import refresh_forecasts
from .metrics import ReplenisherMetrics
from .policy import Policy

log = logging.getLogger(__name__)


def default_policy(settings: Settings) -> Policy:
    return Policy(
        lead_time_days=settings.default_lead_time_days,
        review_days=settings.default_review_days,
        service_level=settings.default_service_level,
    )


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
        store = ReplenisherStore(self.pool, self.policy)
        consumer = batch_consumer(s, [s.topic_prefix + LEDGER], "replenisher", self.assignment)
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

        async def handle(records: list[Record]) -> bool:
            entries = json_values(records)
            if await retry("deciding on a batch", self.stopping, store.apply, entries) is None:
                return False
            self.metrics.entries_applied.inc(len(entries))
            await commit(consumer, next_offsets(records))
            return True

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

    async def _forecast_on_schedule(self) -> None:
        """Forecasts and gauges recomputed every forecast_interval_s, apart from the event path."""
        assert self.pool is not None
        while not await sleep_unless(self.stopping, self.settings.forecast_interval_s):
            started = time.perf_counter()
            try:
                result = await refresh_forecasts(self.pool, self.policy)
                await self._gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("the forecast pass failed; the next one will try again")
                continue
            self.metrics.forecast_seconds.observe(time.perf_counter() - started)
            self.metrics.forecasts.set(result["items"])
            self.metrics.forecast_error.set(result["mean_mae"])

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
