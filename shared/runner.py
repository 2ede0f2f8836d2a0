"""Runs a service until SIGINT or SIGTERM, then lets it drain and stop.

On a signal the service finishes the batch in flight (its transaction and its offset commits)
and stops. If that takes longer than ``shutdown_timeout_s`` (a database that does not answer,
say), the run is cancelled: the open transaction is rolled back and no offset is committed, so
the batch is redelivered after restart. Nothing half-done is ever committed either way. Should
closing the connections hang as well, the process exits (status 1) 5 seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg
import uvloop
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from .logs import configure_logging
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CLEANUP_SECONDS = 5.0  # after abandoning a drain, how long closing connections may take
# A service whose start fails on a temporary error (the database or the broker away: restarting
# as the service starts) is started again for this long after the process started.
START_PATIENCE_S = 60.0


class Service(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def run_service(service: Service, settings: Settings, *, gc_threshold: int = 50_000) -> None:
    """Run ``service`` until SIGTERM or SIGINT. A batch creates tens of thousands of short-lived
    objects; with the default collector thresholds the collector ran so often that it took half
    of the ledger's fold time, hence ``gc_threshold`` (allocations between young collections)."""
    started = time.monotonic()
    configure_logging(settings.log_level, settings.secret_values())
    gc.set_threshold(gc_threshold, 20, 100)
    gc.freeze()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        running = asyncio.current_task()
        assert running is not None
        deadline: list[asyncio.TimerHandle] = []
        stopped: list[bool] = []

        def give_up() -> None:
            log.warning(
                "still draining after %ss; abandoning the in-flight batch uncommitted"
                " (it is redelivered after restart)",
                settings.shutdown_timeout_s,
            )
            running.cancel()
            loop.call_later(CLEANUP_SECONDS, exit_now)

        def exit_now() -> None:  # closing connections hangs too: nothing more to save
            log.error("cleanup unfinished %ss after abandoning; exiting now", CLEANUP_SECONDS)
            logging.shutdown()
            os._exit(1)

        def stop() -> None:
            stopped.append(True)
            service.stop()
            if not deadline:  # a second signal does not move the deadline
                deadline.append(loop.call_later(settings.shutdown_timeout_s, give_up))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        with contextlib.suppress(asyncio.CancelledError):
            await run_patiently(service, started + START_PATIENCE_S, lambda: bool(stopped))

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except Exception:  # logged, so that the traceback goes through the secrets' redaction too
        log.exception("the service stopped on an error")
        raise SystemExit(1) from None


async def run_patiently(
    service: Service,
    until: float,
    stopped: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``service``; should it fail on a temporary error (see :func:`temporary`) before
    ``until`` (a ``time.monotonic()``) and without being asked to stop, run it again after a
    pause (0.5 s, doubling up to 5 s). Kafka clients wait for brokers as they start; this covers
    the database too, and a process started just as PostgreSQL stops would otherwise exit."""
    delay = 0.5
    while True:
        try:
            await service.run()
            return
        except Exception as exc:
            if not _temporary_all(exc) or stopped() or time.monotonic() + delay > until:
                raise
            log.warning(
                "the service could not start: %s; starting again",
                type(exc).__name__,
                extra={"in_seconds": delay},
            )
        await sleep(delay)
        delay = min(delay * 2, 5.0)


def _temporary_all(exc: BaseException) -> bool:
    """:func:`temporary`, for each error of a task group's too; TLS that does not verify is
    not waited for."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_temporary_all(e) for e in exc.exceptions)
    return temporary(exc) and not isinstance(exc, ssl.SSLError)


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when stopping; returns whether stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


# SQLSTATEs of failures that pass: the connection (class 08), a serialization failure or deadlock
# (40001, 40P01: the transaction may simply run again), a server short of resources (53), shutting
# down or restarting (57P01 to 57P05), an I/O error (58), a standby not yet promoted (25006).
TEMPORARY_SQLSTATES = ("08", "40001", "40P01", "53", "57P0", "58", "25006")


def temporary(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or the broker is away or busy for now, so that the same
    work may succeed if tried again; any other error is the work's own (a bug, or data the
    database cannot take) and trying again changes nothing."""
    if isinstance(exc, OSError):  # connection errors and timeouts included
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "").startswith(TEMPORARY_SQLSTATES)
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError):
        return "connection" in str(exc)  # "connection is closed" (a DataError is a ValueError)
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)
    return False


async def retry(
    what: str,
    stopping: asyncio.Event,
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    only: Callable[[BaseException], bool] | None = None,
) -> T | None:
    """Call ``fn`` until it succeeds, backing off up to 5 s; None if stopping first. Used where
    giving up would lose or skip work (a failed append is retried, never dropped). With ``only``
    (e.g. :func:`temporary`), an error it does not accept is raised at once instead."""
    delay = 0.1
    while True:
        try:
            return await fn(*args)
        except Exception as exc:
            if only is not None and not only(exc):
                raise
            if stopping.is_set():
                log.warning("%s abandoned while stopping; the batch will be redelivered", what)
                return None
            log.exception("%s failed; retrying in %.1fs", what, delay)
            if await sleep_unless(stopping, delay):
                return None
            delay = min(delay * 2, 5.0)
