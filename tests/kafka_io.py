"""Producing to and reading back from the real broker in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import INPUT_TOPICS, topic_specs


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: Iterable[dict[str, Any]]) -> None:
    def key(e: dict[str, Any]) -> bytes:
        d = e["data"]
        return str(d.get("order_id") or d.get("request_id") or d.get("sku")).encode()

    await produce(bootstrap, topic, [(key(e), orjson.dumps(e)) for e in events])


async def read_topic(bootstrap: str, topic: str, count: int, seconds: float = 30.0) -> list[Any]:
    """The first ``count`` records of every partition of ``topic``, read from the beginning."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records: list[Any] = []
        async with asyncio.timeout(seconds):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for rs in batch.values():
                    records.extend(rs)
        return records
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.1)


async def ledger_input_lag(settings: Settings) -> int:
    """Input messages the ledger has not yet committed: its group's committed offsets read
    first, then the topics' end offsets (so the answer is never below the truth at that time)."""
    partitions = [
        TopicPartition(s.name, p)
        for s in topic_specs(settings.topic_prefix)
        if s.name.removeprefix(settings.topic_prefix) in INPUT_TOPICS
        for p in range(s.partitions)
    ]
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(
            f"{settings.consumer_group_prefix}.ledger", partitions=partitions
        )
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    done = {tp: max(0, m.offset) for tp, m in committed.items() if m is not None}
    return sum(ends[tp] - done.get(tp, 0) for tp in partitions)
