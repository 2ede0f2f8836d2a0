"""Runs a service until SIGINT or SIGTERM, then lets it drain and stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from .logs import configure_logging
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class Service(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def run_service(service: Service, settings: Settings) -> None:
    configure_logging(settings.log_level, settings.secret_values())
    # A batch creates tens of thousands of short-lived objects; with the default thresholds the
    # collector runs so often that it took half of the ledger's fold time (measured).
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    try:
        asyncio.run(main())
    except Exception:  # logged, so that the traceback goes through the secrets' redaction too
        log.exception("the service stopped on an error")
        raise SystemExit(1) from None


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when stopping; returns whether stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


async def retry(
    what: str, stopping: asyncio.Event, fn: Callable[..., Awaitable[T]], *args: Any
) -> T | None:
    """Call ``fn`` until it succeeds, backing off up to 5 s; None if stopping first. Used where
    giving up would lose or skip work (a failed append is retried, never dropped)."""
    delay = 0.1
    while True:
        try:
            return await fn(*args)
        except Exception:
            if stopping.is_set():
                log.warning("%s abandoned while stopping; the batch will be redelivered", what)
                return None
            log.exception("%s failed; retrying in %.1fs", what, delay)
            if await sleep_unless(stopping, delay):
                return None
            delay = min(delay * 2, 5.0)
