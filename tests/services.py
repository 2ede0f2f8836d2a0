"""Running the suite's services inside a test, against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Protocol

from shared.settings import Settings


class Service(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...
    async def ready(self) -> dict[str, bool]: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready(service: Service) -> bool:
    try:
        return all((await service.ready()).values())
    except Exception:
        return False


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Run the service until the block ends; yields once it reports ready."""
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            while not await _ready(service):
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        yield service
    finally:
        service.stop()
        async with asyncio.timeout(30):
            await task


def with_port(settings: Settings) -> Settings:
    return settings.model_copy(update={"http_port": free_port()})
