"""The ledger service, built from settings: input consumer, relay, and its health endpoints."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.http import health_app, serve_http
from shared.kafka import Assignment, batch_consumer, producer, readiness, start_client
from shared.settings import Settings
from shared.topics import INPUT_TOPICS, LEDGER

from .adapters.consumer import LedgerConsumer
from .adapters.postgres import PostgresLedgerStore
from .adapters.relay import Relay
from .metrics import LedgerMetrics

log = logging.getLogger(__name__)


class LedgerService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = LedgerMetrics.create()
        self.stopping = asyncio.Event()
        self.assignment = Assignment()
        self.pool: asyncpg.Pool | None = None
        self.relay: Relay | None = None

    async def ready(self) -> dict[str, bool]:
        return {**await readiness(self.pool, self.assignment), "relay": self.relay is not None}

    async def run(self) -> None:
        s = self.settings
        url = s.database_dsn()
        self.pool = await asyncpg.create_pool(url, min_size=1, max_size=s.db_pool_size)
        consumer = batch_consumer(
            s, [s.topic_prefix + t for t in INPUT_TOPICS], "ledger", self.assignment
        )
        dlq_producer = producer(s)
        relay_producer = producer(s)
        await start_client(dlq_producer, s)
        await start_client(relay_producer, s)
        await start_client(consumer, s)
        self.relay = Relay(url, relay_producer, s.topic_prefix + LEDGER, self.metrics)
        ingest = LedgerConsumer(
            consumer,
            dlq_producer,
            PostgresLedgerStore(self.pool),
            self.metrics,
            self.assignment,
            s.topic_prefix,
            s.batch_max_records,
            s.batch_timeout_ms,
        )
        http = health_app(self.metrics.registry, self.ready)
        log.info("ledger started", extra={"topics": list(INPUT_TOPICS)})
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(ingest.run(self.stopping))
                tasks.create_task(self.relay.run(self.stopping))
                if s.metrics_port:
                    tasks.create_task(serve_http(http, s.http_host, s.metrics_port, self.stopping))
        finally:
            await consumer.stop()
            await dlq_producer.stop()
            await relay_producer.stop()
            await self.pool.close()
            log.info("ledger stopped")

    def stop(self) -> None:
        self.stopping.set()


def create_service(settings: Settings) -> LedgerService:
    return LedgerService(settings)
