"""Batches of a consumer that gathers a busy stream, against the real broker."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.kafka import GATHER_FROM, Assignment, Record, batch_consumer, consume_batches
from shared.settings import Settings
from shared.topics import LEDGER

from ..kafka_io import produce

pytestmark = pytest.mark.integration

# each test with the partitions read as they come, and read in step (the replenisher's way)
in_step = pytest.mark.parametrize("aligned", [False, True], ids=["as-they-come", "in-step"])


async def batches_of(
    settings: Settings,
    gather_ms: int,
    count: int,
    later: int = 0,
    after: float = 0.0,
    max_records: int = 10_000,
    aligned: bool = False,
) -> list[tuple[float, int]]:
    """(seconds since the consumer started, records) of each batch of at most ``max_records``
    that a consumer gathering for ``gather_ms`` hands over, until it has ``count`` records;
    ``later`` more records are produced ``after`` seconds after it was assigned its partitions
    (and so began to fetch)."""
    topic = settings.topic_prefix + LEDGER
    bootstrap = settings.kafka_bootstrap_servers
    await produce(bootstrap, topic, [(b"k%d" % (i % 50), b"v") for i in range(count - later)])
    assignment = Assignment()
    consumer = batch_consumer(settings, [topic], "gather", assignment)
    await consumer.start()
    stopping = asyncio.Event()
    seen: list[tuple[float, int]] = []
    started = time.monotonic()

    async def handle(records: list[Record]) -> bool:
        seen.append((time.monotonic() - started, len(records)))
        if sum(n for _, n in seen) >= count:
            stopping.set()
        return True

    async def produce_later() -> None:
        if later:
            await assignment.assigned.wait()
            await asyncio.sleep(after)
            await produce(bootstrap, topic, [(b"late%d" % i, b"v") for i in range(later)])

    try:
        async with asyncio.timeout(60):
            await asyncio.gather(
                consume_batches(
                    consumer, stopping, handle, max_records, 50, gather_ms, aligned=aligned
                ),
                produce_later(),
            )
    finally:
        await consumer.stop()
    return seen


@in_step
async def test_a_busy_stream_is_gathered_into_one_batch(settings: Settings, aligned: bool) -> None:
    # what arrives during the gathering joins the batch of the busy fetch before it
    seen = await batches_of(
        settings, 5_000, GATHER_FROM + 1_500, later=500, after=1.0, aligned=aligned
    )
    assert [n for _, n in seen] == [GATHER_FROM + 1_500]
    assert seen[0][0] >= 4.5  # handed over when the gathering ended


@in_step
async def test_a_gathered_batch_stops_at_the_record_limit(
    settings: Settings, aligned: bool
) -> None:
    seen = await batches_of(settings, 30_000, 6_500, max_records=3_000, aligned=aligned)
    sizes = [n for _, n in seen]
    assert sum(sizes) == 6_500
    assert max(sizes) == 3_000
    # full batches are handed over at once, not after the 30 s of gathering
    assert seen[-1][0] < 20.0


@in_step
async def test_a_quiet_stream_is_handled_at_once(settings: Settings, aligned: bool) -> None:
    seen = await batches_of(settings, 30_000, 10, aligned=aligned)
    assert sum(n for _, n in seen) == 10
    assert seen[-1][0] < 10.0  # not after the 30 s of gathering


@in_step
async def test_without_gathering_a_busy_fetch_is_handled_as_it_comes(
    settings: Settings, aligned: bool
) -> None:
    seen = await batches_of(settings, 0, GATHER_FROM + 1_500, later=500, after=2.0, aligned=aligned)
    assert sum(n for _, n in seen) == GATHER_FROM + 1_500
    assert len(seen) >= 2  # the late records came in a batch of their own
