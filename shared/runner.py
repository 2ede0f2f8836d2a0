"""Runs a service until SIGINT or SIGTERM, then lets it drain and stop."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

from .logs import configure_logging
from .settings import Settings


class Service(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def run_service(service: Service, settings: Settings) -> None:
    configure_logging(settings.log_level)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(main())
