"""Running the suite's services inside a test, against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


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


def start_process(
    service: str, settings: Settings, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """``python -m services.<service>`` as its own process, configured like ``settings`` (its
    own HTTP port), its output appended to ``log``; ``env`` adds or overrides variables."""
    full = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "STOCKLEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "STOCKLEDGER_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
        "STOCKLEDGER_HTTP_PORT": str(free_port()),
        "STOCKLEDGER_METRICS_PORT": "0",
        **env,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=out,
        )
