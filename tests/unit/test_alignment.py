"""The rule that releases input records in produce order across partitions (no server)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from shared.alignment import DONE, WAITING, AlignedFetcher, release

A, B, C = TopicPartition("orders", 0), TopicPartition("scans", 0), TopicPartition("scans", 1)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int


def records(tp: TopicPartition, *times: int) -> deque[Rec]:
    return deque(Rec(tp.topic, tp.partition, i, t) for i, t in enumerate(times))


def times(batch: list[Rec]) -> list[int]:
    return [r.timestamp for r in batch]


def test_records_are_merged_by_produce_time_up_to_the_least_advanced_partition() -> None:
    buffers = {A: records(A, 1, 4, 6), B: records(B, 2, 3, 5, 9)}
    batch = release(buffers, {A: 6, B: 9}, 100)
    assert times(batch) == [1, 2, 3, 4, 5, 6]
    assert times(list(buffers[B])) == [9]  # A may still deliver something older than 9
    assert not buffers[A]


def test_a_partition_with_more_to_read_and_nothing_delivered_holds_everything_back() -> None:
    buffers = {A: records(A, 1, 2), B: deque[Rec]()}
    assert release(buffers, {A: 2, B: WAITING}, 100) == []
    assert times(list(buffers[A])) == [1, 2]


def test_a_partition_with_nothing_more_to_read_holds_nothing_back() -> None:
    buffers = {A: records(A, 1, 2), B: records(B, 7)}
    assert times(release(buffers, {A: DONE, B: DONE, C: DONE}, 100)) == [1, 2, 7]


def test_beyond_the_limit_records_go_back_to_the_front_of_their_partitions_in_order() -> None:
    buffers = {A: records(A, 1, 3, 5), B: records(B, 2, 4, 6)}
    assert times(release(buffers, {A: 5, B: 6}, 3)) == [1, 2, 3]
    assert [r.offset for r in buffers[A]] == [2]
    assert [r.offset for r in buffers[B]] == [1, 2]
    assert times(release(buffers, {A: 5, B: 6}, 3)) == [4, 5]  # 6: A may send an earlier one


def test_a_partition_keeps_its_own_order_when_its_times_go_backwards() -> None:
    buffers = {A: records(A, 5, 1, 2), B: records(B, 3, 8)}
    batch = release(buffers, {A: 5, B: 8}, 100)
    assert [(r.topic, r.offset) for r in batch if r.topic == "orders"] == [
        ("orders", 0),
        ("orders", 1),
        ("orders", 2),
    ]
    assert times(batch) == [3, 5, 1, 2]


@given(
    st.lists(st.lists(st.integers(0, 50), max_size=30), min_size=1, max_size=4),
    st.integers(1, 20),
)
def test_all_released_once_in_produce_order_when_partitions_deliver_everything(
    partitions: list[list[int]], limit: int
) -> None:
    tps = [TopicPartition("t", i) for i in range(len(partitions))]
    buffers = {tp: records(tp, *sorted(ts)) for tp, ts in zip(tps, partitions, strict=True)}
    out: list[Rec] = []
    while any(buffers.values()):
        batch = release(buffers, {tp: DONE for tp in tps}, limit)
        assert 0 < len(batch) <= limit
        out += batch
    assert times(out) == sorted(t for ts in partitions for t in ts)
    assert sorted((r.partition, r.offset) for r in out) == [
        (i, n) for i, ts in enumerate(partitions) for n in range(len(ts))
    ]


class FakeConsumer:
    """The part of AIOKafkaConsumer the fetcher uses: partitions with logs, read positions."""

    def __init__(self, logs: dict[TopicPartition, list[int]]) -> None:
        self.logs = {tp: list(records(tp, *ts)) for tp, ts in logs.items()}
        self.positions = dict.fromkeys(logs, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Rec]]:
        got = {}
        for tp in partitions or sorted(self.logs):
            taken = self.logs[tp][self.positions[tp] : self.positions[tp] + max_records]
            if taken:
                got[tp] = taken
                self.positions[tp] += len(taken)
                max_records -= len(taken)
            if not max_records:
                break
        return got

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def last_stable_offset(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.logs[tp])


async def read(fetcher: AlignedFetcher, batches: int) -> list[Rec]:
    out: list[Rec] = []
    for _ in range(batches):
        out += await fetcher.next_batch(asyncio.Event())
    return out


async def test_the_fetcher_hands_out_whole_backlogs_in_produce_order() -> None:
    consumer = FakeConsumer({A: list(range(0, 40, 2)), B: list(range(1, 40, 2))})
    fetcher = AlignedFetcher(cast(AIOKafkaConsumer, consumer), 6, 0)
    out = await read(fetcher, 20)
    assert times(out) == list(range(40))


async def test_a_partition_read_again_from_its_commit_replaces_what_was_buffered() -> None:
    consumer = FakeConsumer({A: list(range(0, 40, 2)), B: list(range(1, 40, 2))})
    fetcher = AlignedFetcher(cast(AIOKafkaConsumer, consumer), 6, 0)
    first = await read(fetcher, 1)
    assert times(first) == list(range(6))
    consumer.positions[A] = 0  # assigned again, nothing committed: read from the start
    again = await read(fetcher, 20)
    a_offsets = [r.offset for r in again if r.topic == A.topic]
    assert a_offsets == list(range(20))  # once each, in order, from the start
    assert times(again) == sorted(times(again))


class ArrivingConsumer(FakeConsumer):
    """A fake whose partitions' ends are known as of the last fetch that asked for them, as
    aiokafka knows them, and whose logs grow."""

    def __init__(self, logs: dict[TopicPartition, list[int]]) -> None:
        super().__init__(logs)
        self.known_end: dict[TopicPartition, int] = {}

    def arrive(self, tp: TopicPartition, *ts: int) -> None:
        start = len(self.logs[tp])
        self.logs[tp].extend(Rec(tp.topic, tp.partition, start + i, t) for i, t in enumerate(ts))

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Rec]]:
        for tp in partitions or self.logs:
            self.known_end[tp] = len(self.logs[tp])
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    def last_stable_offset(self, tp: TopicPartition) -> int:
        return -1  # read_uncommitted: the fetcher goes by the high watermark

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.known_end.get(tp)


async def test_a_caught_up_fetcher_may_hand_out_what_arrives_as_it_was_fetched() -> None:
    for loose in (False, True):
        consumer = ArrivingConsumer({A: [1, 3], B: [2, 4]})
        fetcher = AlignedFetcher(
            cast(AIOKafkaConsumer, consumer), 10, 0, as_they_come_when_caught_up=loose
        )
        assert times(await read(fetcher, 1)) == [1, 2, 3, 4]  # a backlog: in produce order
        consumer.arrive(A, 6)
        consumer.arrive(B, 5)
        # caught up, and the fetch leaves every partition at its end: as fetched, or merged
        assert times(await read(fetcher, 1)) == ([6, 5] if loose else [5, 6])


async def test_a_fetch_that_leaves_a_partition_behind_is_merged_in_produce_order() -> None:
    consumer = ArrivingConsumer({A: [1], B: [2]})
    fetcher = AlignedFetcher(
        cast(AIOKafkaConsumer, consumer), 2, 0, as_they_come_when_caught_up=True
    )
    assert times(await read(fetcher, 1)) == [1, 2]
    consumer.arrive(A, 5, 7, 9)
    consumer.arrive(B, 6, 8)
    # the first fetch takes two of A's records and leaves both partitions with more to read
    out = await read(fetcher, 3)
    assert times(out) == [5, 6, 7, 8, 9]
