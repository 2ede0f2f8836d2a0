"""Runs a service until SIGINT or SIGTERM, then lets it drain and stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from typing import Protocol

from .logs import configure_logging
from .settings import Settings


class Service(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def run_service(service: Service, settings: Settings) -> None:
    configure_logging(settings.log_level)
    # A batch creates tens of thousands of short-lived objects; with the default thresholds the
    # collector runs so often that it took half of the ledger's fold time (measured).
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(main())


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when stopping; returns whether stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
