"""The ledger service, built from settings: input consumer, relay, and its health endpoints."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.http import health_app, serve_http
from shared.kafka import (
    Assignment,
    batch_consumer,
    dead_letter_producer,
    producer,
    readiness,
    start_client,
)
from shared.settings import Settings
from shared.topics import INPUT_TOPICS, LEDGER

from .adapters.consumer import LedgerConsumer
from .adapters.postgres import SESSION_SETTINGS, PostgresLedgerStore
from .adapters.relay import Relay
from .metrics import LedgerMetrics

log = logging.getLogger(__name__)

# Allocations between young collections (``shared.runner.run_service``): at 50,000 the collector
# still took about a tenth of ingest's CPU, 43-46 ms per 1,000 events against 39 with it off and
# 41-42 at 500,000 (objects without cycles are freed at once, without it).
GC_THRESHOLD = 500_000


class LedgerService:
    """The ingest consumer and the relay, in one process or each in its own: ``ingest`` and
    ``relay`` say which run here."""

    def __init__(self, settings: Settings, *, ingest: bool = True, relay: bool = True) -> None:
        self.settings = settings
        self.ingest, self.with_relay = ingest, relay
        self.metrics = LedgerMetrics.create()
        self.stopping = asyncio.Event()
        self.assignment = Assignment()
        self.pool: asyncpg.Pool | None = None
        self.relay: Relay | None = None

    async def ready(self) -> dict[str, bool]:
        checks = await readiness(self.pool, self.assignment)
        if not self.ingest:
            del checks["kafka_assigned"]
        if self.with_relay:
            checks["relay"] = self.relay is not None
        return checks

    async def run(self) -> None:
        s = self.settings
        url = s.database_dsn()
        self.pool = await asyncpg.create_pool(
            url, min_size=1, max_size=s.db_pool_size, server_settings=SESSION_SETTINGS
        )
        producers: list[AIOKafkaProducer] = []
        consumer = None
        try:
            async with asyncio.TaskGroup() as tasks:
                if self.ingest:
                    consumer = batch_consumer(
                        s, [s.topic_prefix + t for t in INPUT_TOPICS], "ledger", self.assignment
                    )
                    dlq_producer = await self._producer(producers, dead_letter_producer(s))
                    await start_client(consumer, s)
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
                    tasks.create_task(ingest.run(self.stopping))
                if self.with_relay:
                    relay_producer = await self._producer(producers)
                    self.relay = Relay(
                        url,
                        relay_producer,
                        s.topic_prefix + LEDGER,
                        self.metrics,
                        session_settings=s.leader_session_settings(),
                    )
                    tasks.create_task(self.relay.run(self.stopping))
                if s.metrics_port:
                    http = health_app(self.metrics.registry, self.ready)
                    tasks.create_task(serve_http(http, s.http_host, s.metrics_port, self.stopping))
                log.info("ledger started", extra={"ingest": self.ingest, "relay": self.with_relay})
        finally:
            if consumer is not None:
                await consumer.stop()
            for p in producers:
                await p.stop()
            await self.pool.close()
            log.info("ledger stopped")

    async def _producer(
        self, started: list[AIOKafkaProducer], p: AIOKafkaProducer | None = None
    ) -> AIOKafkaProducer:
        p = p or producer(self.settings)
        await start_client(p, self.settings)
        started.append(p)
        return p

    def stop(self) -> None:
        self.stopping.set()


def create_service(settings: Settings) -> LedgerService:
    """The ledger as configured: with its relay, unless ``ledger_relay`` is off (the relay then
    runs as its own process, ``python -m services.ledger.relay``)."""
    return LedgerService(settings, relay=settings.ledger_relay)
