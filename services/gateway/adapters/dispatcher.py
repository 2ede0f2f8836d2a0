"""Sends outbound webhooks: takes due deliveries from PostgreSQL, POSTs each signed per
Standard Webhooks, and records every attempt. A receiver that is down or slow holds up only its
own deliveries: attempts run concurrently, at most ``PER_ENDPOINT`` at a time per endpoint."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from shared.runner import sleep_unless, temporary
from shared.settings import Settings

from ..domain.deliveries import retry_delay, verdict
from ..domain.signatures import standard_headers
from ..metrics import GatewayMetrics
from .store import Claimed, GatewayStore

log = logging.getLogger(__name__)
PER_ENDPOINT = 16  # attempts in flight per endpoint
CLAIM = 200  # deliveries taken per round
IDLE_S = 0.5  # how long an idle dispatcher waits before looking again
LEASE_MARGIN_S = 5.0  # a lease outlasts an attempt's timeout by this much


class Dispatcher:
    def __init__(self, store: GatewayStore, settings: Settings, metrics: GatewayMetrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.wakeup = asyncio.Event()
        self.in_flight: Counter[str] = Counter()
        self.rng = random.Random()

    async def run(self, stopping: asyncio.Event) -> None:
        s = self.settings
        lease = s.webhook_timeout_s + LEASE_MARGIN_S
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=s.webhook_timeout_s, follow_redirects=False) as http:
            try:
                while not stopping.is_set():
                    self.wakeup.clear()
                    busy = [e for e, n in self.in_flight.items() if n >= PER_ENDPOINT]
                    try:
                        claimed = await self.store.claim(CLAIM, lease, busy)
                    except Exception as exc:
                        if not temporary(exc):
                            raise
                        log.warning("claiming deliveries failed; trying again", exc_info=True)
                        claimed = []
                    for delivery in claimed:
                        self.in_flight[delivery.endpoint] += 1
                        task = asyncio.create_task(self._attempt(http, delivery))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if len(claimed) < CLAIM:
                        with_wakeup = asyncio.create_task(self.wakeup.wait())
                        stopped = asyncio.create_task(sleep_unless(stopping, IDLE_S))
                        await asyncio.wait(
                            {with_wakeup, stopped}, return_when=asyncio.FIRST_COMPLETED
                        )
                        with_wakeup.cancel()
                        stopped.cancel()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _attempt(self, http: httpx.AsyncClient, delivery: Claimed) -> None:
        s = self.settings
        at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after = 0.0
        try:
            headers = standard_headers(delivery.secret, delivery.message_id, delivery.body, at)
            answer = await http.post(delivery.url, content=delivery.body, headers=headers)
            status = answer.status_code
            outcome = verdict(status)
            if outcome != "delivered":
                error = f"HTTP {status}"
                retry_after = _seconds(answer.headers.get("retry-after"))
        except httpx.HTTPError as exc:
            outcome, error = "retry", f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # a malformed URL or secret: the attempt fails, the loop goes on
            outcome, error = "retry", f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = (time.perf_counter() - started) * 1000
        retry_in: float | None = None
        if outcome == "retry":
            delay = retry_delay(
                delivery.attempt, s.webhook_backoff_initial_s, s.webhook_backoff_max_s, self.rng
            )
            delay = max(delay, min(retry_after, s.webhook_backoff_max_s))
            deadline = delivery.created_at + timedelta(hours=s.webhook_retry_hours)
            if at + timedelta(seconds=delay) > deadline:
                outcome = "failed"
            else:
                outcome, retry_in = "pending", delay
        elif outcome == "gone":
            outcome = "failed"
        try:
            await self.store.record(delivery, at, status, error, duration_ms, outcome, retry_in)
        except Exception:  # the lease runs out and the delivery is attempted again: at least once
            log.exception("recording an attempt failed", extra={"endpoint": delivery.endpoint})
        finally:
            self.in_flight[delivery.endpoint] -= 1
            self.wakeup.set()
        self.metrics.deliveries.labels("retry" if outcome == "pending" else outcome).inc()
        if delivery.attempt > 1:
            self.metrics.retries.inc()
        if outcome == "delivered":
            self.metrics.delivery_lag.observe(
                (datetime.now(UTC) - delivery.created_at).total_seconds()
            )


def _seconds(value: str | None) -> float:
    """A Retry-After of delta-seconds (an HTTP date is ignored)."""
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
