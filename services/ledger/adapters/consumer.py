"""The ledger's Kafka edge: input batches in, dead letters out, offsets committed after the append.

One fetch is one batch and one PostgreSQL transaction. Offsets are committed per partition only
after the transaction commits; a crash in between redelivers the batch, which the store ignores.
A failing database stops the flow (the batch is retried with backoff, never skipped); a bad
message never does (it goes to its dead-letter topic).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.alignment import AlignedFetcher
from shared.events.codec import Rejection, decode
from shared.kafka import Assignment, Record, commit, dead_letter, next_offsets
from shared.runner import retry

from ..metrics import LedgerMetrics
from .store import Accepted, LedgerStore

log = logging.getLogger(__name__)

Rejected = tuple[Record, str, str]  # the record, the reason code, the detail
DECODE_SLICE = 250  # records decoded at a time while the previous batch is being appended


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
        self._stopping = asyncio.Event()
        self.fetcher = AlignedFetcher(consumer, batch_max_records, batch_timeout_ms)

    async def run(self, stopping: asyncio.Event) -> None:
        # The next batch is fetched and decoded while the current one is being appended, so the
        # CPU work of decoding overlaps with PostgreSQL's work on the previous transaction.
        self._stopping = stopping
        upcoming = asyncio.create_task(self._fetch())
        try:
            while not stopping.is_set():
                records, accepted, rejected = await upcoming
                upcoming = asyncio.create_task(self._fetch())
                if records:
                    await self.handle(records, accepted, rejected, stopping)
        finally:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upcoming

    async def _fetch(self) -> tuple[list[Record], list[Accepted], list[Rejected]]:
        # in the order the records were produced, across topics and batches (each partition's
        # order kept), so that an order placed just before its shipment is scanned is applied
        # first even when the two travel on different topics
        records = await self.fetcher.next_batch(self._stopping)
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for start in range(0, len(records), DECODE_SLICE):
            if start:  # let the batch being appended go on between slices
                await asyncio.sleep(0)
            more_accepted, more_rejected = self.decode(records[start : start + DECODE_SLICE])
            accepted += more_accepted
            rejected += more_rejected
        return records, accepted, rejected

    def decode(self, records: list[Record]) -> tuple[list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        consumed: collections.Counter[str] = collections.Counter()
        for record in records:
            topic = record.topic.removeprefix(self.prefix)
            consumed[topic] += 1
            decoded = decode(record.value)
            if isinstance(decoded, Rejection):
                rejected.append((record, decoded.reason, decoded.detail))
                self.metrics.dead_letters.labels(topic, decoded.reason).inc()
                log.warning(
                    "message dead-lettered",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": decoded.reason,
                        "detail": decoded.detail,
                    },
                )
            else:
                accepted.append(Accepted(topic, decoded))
        for topic, n in consumed.items():  # per batch: a labelled inc() per message costs 4%
            self.metrics.consumed.labels(topic).inc(n)
        return accepted, rejected

    async def handle(
        self,
        records: list[Record],
        accepted: list[Accepted],
        rejected: list[Rejected],
        stopping: asyncio.Event,
    ) -> None:
        """Dead-letter, append, then commit the batch's offsets, in that order."""
        self.metrics.batch_size.observe(len(records))
        if (
            rejected
            and await retry("dead-letter", stopping, dead_letter, self.producer, rejected) is None
        ):
            return  # stopping before the dead letters were safe: nothing is committed
        if accepted and not await self._append(accepted, stopping):
            return  # stopping: the batch is redelivered after restart, nothing was committed
        await commit(self.consumer, next_offsets(records))

    async def _append(self, accepted: list[Accepted], stopping: asyncio.Event) -> bool:
        started = time.perf_counter()
        result = await retry("append", stopping, self.store.append, accepted)
        if result is None:
            return False
        elapsed = time.perf_counter() - started
        self.metrics.append_seconds.observe(elapsed)
        log.debug(
            "batch appended",
            extra={
                "events": len(accepted),
                "entries": result.entries,
                "duplicates": result.duplicates,
                "seconds": elapsed,
            },
        )
        self.metrics.appended.inc(result.entries)
        self.metrics.duplicates.inc(result.duplicates)
        return True
