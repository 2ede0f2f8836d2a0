"""Input records in the order they were produced, across partitions and topics, batch after batch.

aiokafka hands out a fetch partition by partition: while a consumer catches up, one batch can hold
thousands of records of one partition and none of another. A shipment scanned on one topic would
then be applied before the order placed a second earlier on another, and during a long catch-up
every scan before every order. :class:`AlignedFetcher` keeps what each partition has delivered and
releases records only up to the produce time that every partition with more to read has reached;
a partition with nothing more to read holds nothing back, so a consumer that keeps up waits for
nothing. Each partition's own order is always kept.

:func:`release` is the pure rule; :class:`AlignedFetcher` is its Kafka edge.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

log = logging.getLogger(__name__)

Record = Any  # aiokafka.ConsumerRecord[bytes, bytes]

WAITING = None
"""The horizon of a partition that has more to read but has delivered none of it yet."""
DONE = float("inf")
"""The horizon of a partition with nothing more to read: it holds nothing back."""


def _produced_at(record: Record) -> int:
    return int(record.timestamp)


def release(
    buffers: Mapping[TopicPartition, deque[Record]],
    horizons: Mapping[TopicPartition, float | None],
    limit: int,
) -> list[Record]:
    """Take from ``buffers`` (each in its partition's order) the records that can no longer be
    preceded by one not yet read, merged by produce time, at most ``limit`` of them.

    A partition's horizon is the latest produce time it has delivered (:data:`DONE` if it has
    nothing more to read, :data:`WAITING` if it has more but delivered none yet); a record is
    released when its time is at most every horizon, and only after the records before it in its
    partition."""
    horizon = min((h for h in horizons.values()), default=DONE, key=_order)
    if horizon is WAITING:
        return []
    ready = []
    for buffer in buffers.values():
        n = 0
        for record in buffer:
            if record.timestamp > horizon:
                break
            n += 1
        if n:
            ready.append([buffer.popleft() for _ in range(n)])
    merged = list(heapq.merge(*ready, key=_produced_at))
    for record in reversed(merged[limit:]):  # beyond the limit: back to the front, in order
        buffers[_partition(record)].appendleft(record)
    return merged[:limit]


def _order(horizon: float | None) -> float:
    return float("-inf") if horizon is WAITING else horizon


def _partition(record: Record) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


class AlignedFetcher:
    """Batches of at most ``max_records`` records of a consumer's partitions, in produce order.

    Each partition keeps a buffer of up to about twice its share of a batch, read from what the
    consumer has already fetched. When a partition with more to read has delivered nothing yet,
    the others wait for it, up to ``max_wait_s``; after that what is buffered is released as it
    is, so a partition that cannot be read never stops the others for longer.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        max_records: int,
        timeout_ms: int,
        max_wait_s: float = 1.0,
        as_they_come_when_caught_up: bool = False,
    ) -> None:
        self.consumer = consumer
        self.max_records = max_records
        self.timeout_ms = timeout_ms
        self.max_wait_s = max_wait_s
        # A consumer that has read every partition to its end gets what arrives next as one
        # fetch hands it out, unmerged, when that fetch leaves every partition at its end again:
        # nothing it holds back could come before it. For a consumer whose order within a
        # batch does not matter (it sorts the batch itself), not for the ledger's input.
        self.as_they_come_when_caught_up = as_they_come_when_caught_up
        self.buffers: dict[TopicPartition, deque[Record]] = {}
        self.reached: dict[TopicPartition, int] = {}  # latest produce time delivered
        self.last_offset: dict[TopicPartition, int] = {}  # of the last record delivered
        self.read_to: dict[TopicPartition, int] = {}  # the next offset to read, as last known

    async def next_batch(
        self,
        stopping: asyncio.Event,
        timeout_ms: int | None = None,
        max_records: int | None = None,
    ) -> list[Record]:
        """The next batch; empty when nothing arrived within the timeout, or when stopping.
        ``timeout_ms`` and ``max_records`` override the fetcher's own for this batch."""
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        limit = self.max_records if max_records is None else max_records
        if self.as_they_come_when_caught_up:
            assigned = self._assigned()
            if not any(self.buffers.values()) and self._caught_up(assigned):
                if not self._add(await self._get([], timeout_ms, limit)):
                    return []  # nothing arrived: idle
                if self._caught_up(assigned):
                    batch = [r for tp in sorted(self.buffers) for r in self.buffers[tp]]
                    self.buffers.clear()
                    return batch
        deadline: float | None = None
        while not stopping.is_set():
            assigned = self._assigned()
            await self._top_up(assigned)
            horizons = {tp: await self._horizon(tp) for tp in assigned}
            waiting = [tp for tp, h in horizons.items() if h is WAITING]
            if waiting and deadline is not None and time.monotonic() >= deadline:
                log.warning(
                    "partitions with more to read delivered nothing in time; going on without",
                    extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in waiting)},
                )
                horizons = {tp: h for tp, h in horizons.items() if h is not WAITING}
                waiting = []
            batch = release(self.buffers, horizons, limit)
            if batch:
                return batch
            if waiting:  # wait for the partitions everything else waits for
                deadline = deadline or time.monotonic() + self.max_wait_s
                self._add(await self._get(waiting, timeout_ms, self._share(assigned)))
            elif not self._add(await self._get([], timeout_ms, self._share(assigned))):
                return []  # nothing buffered and nothing arrived: idle
        return []

    def _assigned(self) -> set[TopicPartition]:
        assigned: set[TopicPartition] = self.consumer.assignment()
        for tp in self.buffers.keys() - assigned:  # revoked: the new owner reads them again
            del self.buffers[tp]
            self.reached.pop(tp, None)
            self.last_offset.pop(tp, None)
        for tp in self.read_to.keys() - assigned:
            del self.read_to[tp]
        return assigned

    def _caught_up(self, assigned: set[TopicPartition]) -> bool:
        """Whether every partition has been read to its end as the consumer last saw it (from
        the offsets delivered and the positions looked up, without asking the consumer)."""
        for tp in assigned:
            try:
                end = self._end(tp)
            except (IllegalStateError, AssertionError):  # revoked meanwhile
                return False
            if end is None or self.read_to.get(tp, -1) < end:
                return False
        return True

    def _end(self, tp: TopicPartition) -> int | None:
        end: int | None = self.consumer.last_stable_offset(tp)
        if end is None or end < 0:  # read_uncommitted, or an old broker
            end = self.consumer.highwater(tp)
        return end

    def _share(self, assigned: set[TopicPartition]) -> int:
        return max(1, 2 * self.max_records // max(1, len(assigned)))

    async def _top_up(self, assigned: set[TopicPartition]) -> None:
        """Move what the consumer has already fetched into the buffers that run low."""
        share = self._share(assigned)
        for tp in assigned:
            room = share - len(self.buffers.get(tp, ()))
            if room > 0:
                self._add(await self._get([tp], 0, room))

    async def _get(
        self, partitions: list[TopicPartition], timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Record]]:
        try:
            got: dict[TopicPartition, list[Record]] = await self.consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            return got
        except KafkaError as exc:
            log.warning("fetch failed; retrying", extra={"error": str(exc)})
            await asyncio.sleep(1.0)
            return {}

    def _add(self, fetched: dict[TopicPartition, list[Record]]) -> int:
        added = 0
        for tp, records in fetched.items():
            if not records:
                continue
            buffer = self.buffers.setdefault(tp, deque())
            latest = max(map(_produced_at, records))
            if records[0].offset <= self.last_offset.get(tp, -1):
                buffer.clear()  # the partition was assigned again and is read from its commit
            elif tp in self.reached:
                latest = max(latest, self.reached[tp])
            buffer.extend(records)
            self.reached[tp] = latest
            self.last_offset[tp] = records[-1].offset
            self.read_to[tp] = records[-1].offset + 1
            added += len(records)
        return added

    async def _horizon(self, tp: TopicPartition) -> float | None:
        try:
            position = await self.consumer.position(tp)
            end = self._end(tp)
        except (IllegalStateError, AssertionError):  # revoked meanwhile
            return DONE
        self.read_to[tp] = position
        if end is not None and position >= end:
            return DONE  # nothing more to read: what it has delivered is all there is for now
        return self.reached[tp] if self.buffers.get(tp) else WAITING
