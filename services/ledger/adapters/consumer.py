"""The ledger's Kafka edge: input batches in, dead letters out, offsets committed after the append.

One fetch is one batch and one PostgreSQL transaction. Offsets are committed per partition only
after the transaction commits; a crash in between redelivers the batch, which the store ignores.
A failing database stops the flow (the batch is retried with backoff, never skipped); a bad
message never does (it goes to its dead-letter topic).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events.codec import Rejection, decode
from shared.kafka import Assignment, Record, commit, dead_letter, next_offsets

from ..metrics import LedgerMetrics
from .store import Accepted, LedgerStore

log = logging.getLogger(__name__)


class LedgerConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: LedgerStore,
        metrics: LedgerMetrics,
        assignment: Assignment,
        prefix: str,
        batch_max_records: int,
        batch_timeout_ms: int,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.metrics = metrics
        self.assignment = assignment
        self.prefix = prefix
        self.batch_max_records = batch_max_records
        self.batch_timeout_ms = batch_timeout_ms

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=self.batch_timeout_ms, max_records=self.batch_max_records
            )
            records = [r for partition in batch.values() for r in partition]
            if records:
                await self.handle(records, stopping)

    async def handle(self, records: list[Record], stopping: asyncio.Event) -> None:
        accepted: list[Accepted] = []
        rejected: list[tuple[Record, str, str]] = []
        for record in records:
            topic = record.topic.removeprefix(self.prefix)
            self.metrics.consumed.labels(topic).inc()
            decoded = decode(record.value)
            if isinstance(decoded, Rejection):
                rejected.append((record, decoded.reason, decoded.detail))
                self.metrics.dead_letters.labels(topic, decoded.reason).inc()
                log.warning(
                    "message dead-lettered",
                    extra={
                        "topic": record.topic,
                        "offset": record.offset,
                        "reason": decoded.reason,
                        "detail": decoded.detail,
                    },
                )
            else:
                accepted.append(Accepted(topic, decoded))
        self.metrics.batch_size.observe(len(records))
        if rejected:
            await self._retry("dead-letter", stopping, dead_letter, self.producer, rejected)
        if accepted and not await self._append(accepted, stopping):
            return  # stopping: the batch is redelivered after restart, nothing was committed
        await commit(self.consumer, next_offsets(records))

    async def _append(self, accepted: list[Accepted], stopping: asyncio.Event) -> bool:
        started = time.perf_counter()
        result = await self._retry("append", stopping, self.store.append, accepted)
        if result is None:
            return False
        self.metrics.append_seconds.observe(time.perf_counter() - started)
        self.metrics.appended.inc(result.entries)
        self.metrics.duplicates.inc(result.duplicates)
        return True

    async def _retry(self, what: str, stopping: asyncio.Event, fn, *args):  # type: ignore[no-untyped-def]
        delay = 0.1
        while True:
            try:
                return await fn(*args)
            except Exception:
                if stopping.is_set():
                    log.warning("%s abandoned while stopping; the batch will be redelivered", what)
                    return None
                log.exception("%s failed; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
