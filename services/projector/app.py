"""The projector service, built from settings: ledger consumer, read model, and the HTTP API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.replenisher.api import replenishment_routes
from services.replenisher.app import default_policy
from shared.http import error, health_routes, serve_http
from shared.kafka import Assignment, batch_consumer, producer, readiness, start_client
from shared.runner import sleep_unless
from shared.settings import Settings
from shared.topics import LEDGER, LEVELS

from .adapters.consumer import ProjectorConsumer
from .adapters.store import API_SESSION_SETTINGS, ReadModel
from .api.openapi import full_document
from .api.routes import stock_routes
from .metrics import ProjectorMetrics

log = logging.getLogger(__name__)


def create_api(
    model: ReadModel, metrics: ProjectorMetrics, service: Any, settings: Settings
) -> Starlette:
    """The HTTP API: stock and replenishment routes, health, metrics and the OpenAPI document."""
    document = orjson.dumps(full_document())

    async def openapi(_: Request) -> Response:
        return Response(document, media_type="application/json")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error(status, "not_found" if status == 404 else "http_error", str(request.url.path))

    async def internal(_: Request, exc: Exception) -> Response:
        log.error("request failed", exc_info=exc)
        return error(500, "internal", "the request failed; the log has the details")

    routes = [
        *stock_routes(model),
        *replenishment_routes(model.pool, settings, default_policy(settings)),
        Route("/openapi.json", openapi),
        *health_routes(metrics.registry, service.ready),
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: not_found, Exception: internal}
    )
    return app


class ProjectorService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ProjectorMetrics.create()
        self.stopping = asyncio.Event()
        self.assignment = Assignment()
        self.pool: asyncpg.Pool | None = None
        self.api_pool: asyncpg.Pool | None = None

    async def ready(self) -> dict[str, bool]:
        checks = await readiness(self.pool, self.assignment)
        api = self.api_pool is not None and await self.api_pool.fetchval("SELECT true") is True
        return {**checks, "api_postgresql": api}

    async def run(self) -> None:
        s = self.settings
        # The consumer writes the read model; the API reads (and sets policies) with a role of
        # its own, through a pool of its own.
        self.pool = await consumer_pool(s)
        self.api_pool = await api_pool(s)
        model = ReadModel(self.pool)
        consumer = batch_consumer(s, [s.topic_prefix + LEDGER], "projector", self.assignment)
        levels = producer(s)
        await start_client(levels, s)
        await start_client(consumer, s)
        projector = ProjectorConsumer(
            consumer,
            levels,
            model,
            self.metrics,
            s.topic_prefix + LEVELS,
            s.batch_max_records,
            s.batch_timeout_ms,
        )
        api = create_api(ReadModel(self.api_pool), self.metrics, self, s)
        log.info("projector started", extra={"port": s.http_port})
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(projector.run(self.stopping))
                tasks.create_task(serve_http(api, s.http_host, s.http_port, self.stopping))
                tasks.create_task(self._watch_lag(model))
        finally:
            await consumer.stop()
            await levels.stop()
            await self.api_pool.close()
            await self.pool.close()
            log.info("projector stopped")

    async def _watch_lag(self, model: ReadModel) -> None:
        while not self.stopping.is_set():
            try:
                self.metrics.lag.set(await model.lag())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("could not measure the projection lag")
            await sleep_unless(self.stopping, 5)

    def stop(self) -> None:
        self.stopping.set()


async def _keep_session(_: asyncpg.Connection) -> None:
    """Nothing to undo: the consumer's connections set no session state."""


async def consumer_pool(settings: Settings) -> asyncpg.Pool:
    """The consumer's pool. A connection goes back to it as it is: by default asyncpg resets a
    released connection with a round trip of four statements (advisory locks, cursors, listeners,
    settings), one more per batch, while the consumer takes none of them. An open transaction is
    still rolled back on release."""
    return await asyncpg.create_pool(
        settings.database_dsn(),
        min_size=1,
        max_size=settings.db_pool_size,
        reset=_keep_session,
    )


async def api_pool(settings: Settings) -> asyncpg.Pool:
    """The HTTP API's pool: its own role, and plans made for each statement's values."""
    return await asyncpg.create_pool(
        settings.api_database_dsn(),
        min_size=1,
        max_size=settings.db_pool_size,
        server_settings=API_SESSION_SETTINGS,
    )


def create_service(settings: Settings) -> ProjectorService:
    return ProjectorService(settings)
