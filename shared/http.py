"""The small HTTP surface every service has: /healthz, /readyz and /metrics, served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .params import BadParameterError

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def error(status: int, code: str, detail: str) -> JSONResponse:
    """The contract's error shape."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]


def answers_errors(handler: Handler) -> Handler:
    """Bad parameters become 400 with the reason, in the contract's error shape."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadParameterError as exc:
            return error(400, "bad_parameter", str(exc))

    wrapped.__name__ = handler.__name__
    return wrapped


async def body_within(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it proves longer than ``limit`` bytes (declared or
    streamed): a client cannot make the service read or hold more than that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def health_routes(registry: CollectorRegistry, readiness: ReadinessCheck) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            checks = await asyncio.wait_for(readiness(), 5)
        except Exception as exc:  # a readiness probe answers, whatever went wrong
            return error(503, "not_ready", f"readiness check failed: {type(exc).__name__}")
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return JSONResponse(
            {"error": "not_ready", "detail": "not ready", "checks": checks}, status_code=503
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


def health_app(registry: CollectorRegistry, readiness: ReadinessCheck) -> Starlette:
    return Starlette(routes=health_routes(registry, readiness))


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the service owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: ASGIApp, host: str, port: int, stopping: asyncio.Event) -> None:
    """Serve ``app`` until ``stopping`` is set; signals are left to the service."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    await stopping.wait()
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
