"""The projector commits the offsets of applied batches at most once a commit interval while
entries keep coming, once the stream is quiet, and when it stops; never an offset of a batch that
was not applied, nor of a partition no longer assigned."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from services.projector.adapters.consumer import ProjectorConsumer
from services.projector.metrics import ProjectorMetrics

LEDGER = TopicPartition("ledger", 0)
OTHER = TopicPartition("ledger", 1)


def record(offset: int, partition: int = 0) -> SimpleNamespace:
    entry = {
        "position": offset + 1,
        "sku": "MUG",
        "location": "UK",
        "deltas": {"on_hand": 1},
        "occurred_at": "2011-07-01T08:00:00Z",
        "recorded_at": "2011-07-01T08:00:00Z",
    }
    return SimpleNamespace(
        topic="ledger", partition=partition, offset=offset, value=orjson.dumps(entry)
    )


class Consumer:
    """A Kafka consumer's fetches and commits, with batches handed out in turn."""

    def __init__(self, batches: list[list[SimpleNamespace]]) -> None:
        self.batches = batches
        self.commits: list[dict[TopicPartition, int]] = []
        self.assigned = {LEDGER, OTHER}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if self.batches:
            batch = self.batches.pop(0)
            return {TopicPartition("ledger", batch[0].partition): batch}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Model:
    def __init__(self, fail_from: int | None = None) -> None:
        self.batches = 0
        self.fail_from = fail_from

    async def apply(self, entries: Any, publish: Any = None) -> tuple[dict[Any, Any], list[Any]]:
        self.batches += 1
        if self.fail_from is not None and self.batches >= self.fail_from:
            raise ConnectionError("database away")
        return {}, []


def projector(consumer: Consumer, model: Model, every: float) -> ProjectorConsumer:
    return ProjectorConsumer(
        consumer,
        None,
        model,  # type: ignore[arg-type]
        ProjectorMetrics.create(),
        "levels",
        100,
        10,
        commit_every_s=every,
    )


async def test_a_busy_stream_commits_once_an_interval() -> None:
    consumer = Consumer([])
    p = projector(consumer, Model(), every=60)
    stopping = asyncio.Event()
    for offset in range(20):
        assert await p.handle([record(offset)], stopping)
    # the first batch is committed at once, the next 19 wait for the interval
    assert consumer.commits == [{LEDGER: 1}]
    await p.commit_pending()
    assert consumer.commits[-1] == {LEDGER: 20}


async def test_a_quiet_stream_and_a_stop_commit_what_was_applied() -> None:
    batches = [[record(0)], [record(1)], [record(2), record(3)]]
    consumer = Consumer(batches)
    p = projector(consumer, Model(), every=0.2)
    stopping = asyncio.Event()
    running = asyncio.create_task(p.run(stopping))
    await asyncio.sleep(0.6)  # all three fetched at once, then quiet
    assert consumer.commits[0] == {LEDGER: 1}
    assert consumer.commits[-1] == {LEDGER: 4}
    assert len(consumer.commits) == 2
    consumer.batches.append([record(4)])
    await asyncio.sleep(0.05)
    stopping.set()
    await running
    assert consumer.commits[-1] == {LEDGER: 5}


async def test_offsets_of_a_batch_not_applied_are_never_committed() -> None:
    consumer = Consumer([[record(0)], [record(1)]])
    p = projector(consumer, Model(fail_from=2), every=0.05)
    stopping = asyncio.Event()
    running = asyncio.create_task(p.run(stopping))
    await asyncio.sleep(0.3)  # the second batch keeps failing, retried
    stopping.set()
    await running
    assert consumer.commits == [{LEDGER: 1}]


async def test_a_revoked_partition_is_left_to_its_new_owner() -> None:
    consumer = Consumer([])
    p = projector(consumer, Model(), every=60)
    stopping = asyncio.Event()
    assert await p.handle([record(0)], stopping)
    assert await p.handle([record(7, partition=1)], stopping)
    assert await p.handle([record(1)], stopping)
    consumer.assigned = {LEDGER}  # partition 1 went to another instance
    await p.commit_pending()
    assert consumer.commits == [{LEDGER: 1}, {LEDGER: 2}]


async def test_offsets_that_fail_to_commit_stay_pending() -> None:
    consumer = Consumer([])
    p = projector(consumer, Model(), every=60)
    stopping = asyncio.Event()
    assert await p.handle([record(0)], stopping)
    assert await p.handle([record(1)], stopping)

    async def away(offsets: dict[TopicPartition, int]) -> None:
        raise ConnectionError("broker away")

    consumer.commit = away  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await p.commit_pending()
    del consumer.commit
    await p.commit_pending()
    assert consumer.commits[-1] == {LEDGER: 2}
