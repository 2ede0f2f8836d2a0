"""The gateway service, from settings: HTTP in (webhooks, events) to the input topics, and our
output topics out to registered receivers as signed webhooks."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shared.http import error, health_routes, serve_http
from shared.kafka import Assignment, batch_consumer, producer, start_client
from shared.runner import sleep_unless
from shared.settings import Settings
from shared.topics import LEVELS, REPLENISHMENT_REQUESTS

from .adapters.dispatcher import Dispatcher
from .adapters.follower import follow
from .adapters.publisher import Publisher
from .adapters.store import GatewayStore
from .api.endpoints import endpoint_routes
from .api.events import event_routes
from .api.openapi import openapi_document
from .api.webhooks import WebhookApp, webhook_handlers, webhook_routes
from .metrics import GatewayMetrics

log = logging.getLogger(__name__)
GAUGES_EVERY_S = 5.0
POOL_SIZE = 12  # attempts record their outcome concurrently (dispatcher.PER_ENDPOINT per endpoint)


class GatewayService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics.create()
        self.stopping = asyncio.Event()
        self.assignment = Assignment()
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None

    async def ready(self) -> dict[str, bool]:
        database = self.pool is not None and await self.pool.fetchval("SELECT true") is True
        return {
            "postgresql": database,
            "kafka_producer": self.producer is not None,
            "kafka_assigned": self.assignment.assigned.is_set(),
        }

    def app(self, store: GatewayStore, publisher: Publisher) -> ASGIApp:
        s = self.settings
        webhooks = webhook_handlers(s, publisher, self.metrics)
        routes = [
            *health_routes(self.metrics.registry, self.ready),
            *webhook_routes(webhooks),
            *event_routes(s, publisher, store, self.metrics),
            *endpoint_routes(s, store),
            Route("/openapi.json", self._openapi),
        ]

        async def failed(request: Request, exc: Exception) -> Response:
            log.error("request failed", exc_info=exc, extra={"path": request.url.path})
            return error(503, "unavailable", "Kafka or PostgreSQL did not answer; try again")

        return WebhookApp(
            Starlette(routes=routes, exception_handlers={Exception: failed}), webhooks
        )

    async def _openapi(self, _: Request) -> Response:
        return JSONResponse(openapi_document())

    async def run(self) -> None:
        s = self.settings
        self.pool = await asyncpg.create_pool(
            s.database_dsn(), min_size=1, max_size=max(s.db_pool_size, POOL_SIZE)
        )
        store = GatewayStore(self.pool)
        # No linger: aiokafka has one produce request in flight to a broker at a time, and the
        # sends of the webhooks that arrive meanwhile go together in the next one; waiting
        # longer only delays each answer (measured: no fewer CPU seconds per webhook).
        outgoing = producer(s, linger_ms=0)
        topics = [s.topic_prefix + REPLENISHMENT_REQUESTS, s.topic_prefix + LEVELS]
        consumer = batch_consumer(s, topics, "gateway", self.assignment)
        try:
            await start_client(outgoing, s)
            self.producer = outgoing
            await start_client(consumer, s)
            publisher = Publisher(outgoing, s.topic_prefix, self.metrics)
            dispatcher = Dispatcher(store, s, self.metrics)
            log.info("gateway started", extra={"port": s.gateway_port})
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    serve_http(
                        self.app(store, publisher), s.http_host, s.gateway_port, self.stopping
                    )
                )
                tasks.create_task(follow(consumer, store, s, self.stopping, dispatcher.wakeup.set))
                tasks.create_task(dispatcher.run(self.stopping))
                tasks.create_task(self._gauges(store))
        finally:
            await consumer.stop()
            await outgoing.stop()
            await self.pool.close()
            log.info("gateway stopped")

    async def _gauges(self, store: GatewayStore) -> None:
        while not await sleep_unless(self.stopping, GAUGES_EVERY_S):
            try:
                pending, failing = await store.backlog()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue
            self.metrics.pending.set(pending)
            self.metrics.oldest_failing.set(failing)

    def stop(self) -> None:
        self.stopping.set()


def create_service(settings: Settings) -> GatewayService:
    return GatewayService(settings)
