"""Input read in produce order across topics and batches, against the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.ledger.app import create_service
from shared.alignment import AlignedFetcher
from shared.kafka import Assignment, Record, batch_consumer, start_client
from shared.settings import Settings
from shared.topics import ORDERS, SCANS

from .. import events as ev
from ..kafka_io import eventually
from ..services import running

pytestmark = pytest.mark.integration


async def produce_at(settings: Settings, messages: Iterable[tuple[str, bytes, bytes, int]]) -> None:
    """(topic, key, value, produce time in ms) each, sent in that order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic_prefix + topic, value, key=key, timestamp_ms=at)
            for topic, key, value, at in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(settings: Settings, group: str, count: int, aligned: bool) -> list[list[Record]]:
    topics = [settings.topic_prefix + t for t in (SCANS, ORDERS)]
    consumer = batch_consumer(settings, topics, group, Assignment())
    await start_client(consumer, settings)
    fetcher = AlignedFetcher(consumer, settings.batch_max_records, settings.batch_timeout_ms)
    stopping = asyncio.Event()
    batches: list[list[Record]] = []
    try:
        async with asyncio.timeout(60):
            while sum(map(len, batches)) < count:
                if aligned:
                    batch = await fetcher.next_batch(stopping)
                else:
                    got = await consumer.getmany(timeout_ms=20)
                    batch = [r for rs in got.values() for r in rs]
                if batch:
                    batches.append(batch)
    finally:
        await consumer.stop()
    return batches


async def test_records_of_two_topics_come_out_in_produce_order(settings: Settings) -> None:
    settings = settings.model_copy(update={"batch_max_records": 200})
    n = 1500
    start = int(time.time() * 1000) - 10 * n
    # all the scans are written before the orders, though each scan was made after its order
    scans = ((SCANS, b"s%d" % (i % 7), b"s", start + 2 * i + 1) for i in range(n))
    orders = ((ORDERS, b"o%d" % (i % 5), b"o", start + 2 * i) for i in range(n))
    await produce_at(settings, scans)
    await produce_at(settings, orders)

    plain = [r for b in await read_all(settings, "plain", 2 * n, aligned=False) for r in b]
    assert [r.timestamp for r in plain] != sorted(r.timestamp for r in plain)  # the problem

    batches = await read_all(settings, "aligned", 2 * n, aligned=True)
    records = [r for b in batches for r in b]
    assert [r.timestamp for r in records] == list(range(start, start + 2 * n))
    assert all(len(b) <= 200 for b in batches)
    assert len({(r.topic, r.partition, r.offset) for r in records}) == 2 * n


async def test_a_backlog_is_applied_in_the_order_it_happened_across_topics(
    settings: Settings,
) -> None:
    """A ledger catching up on a backlog in small batches applies each order placed, its
    shipment (scanned on another topic) and its cancellation in the order they happened: the
    line commits, ships and has nothing left to release. Read a topic at a time, either the
    shipments would precede their orders (no commitment) or the cancellations would precede the
    shipments (a release)."""
    settings = settings.model_copy(update={"batch_max_records": 100})
    n = 300
    start = int(time.time() * 1000) - 10 * n
    messages = []
    for i in range(n):
        order_id, sku, at = f"O-{i}", f"SKU-{i % 9}", start + 3 * i
        placed = ev.placed(order_id, "UK", [("1", sku, 2)])
        shipped = ev.shipped(sku, "UK", 2, order_id, "1")
        cancelled = ev.cancelled(order_id)
        messages.append((ORDERS, order_id.encode(), orjson.dumps(placed), at))
        messages.append((SCANS, f"UK|{sku}".encode(), orjson.dumps(shipped), at + 1))
        messages.append((ORDERS, order_id.encode(), orjson.dumps(cancelled), at + 2))
    await produce_at(settings, messages)

    url = settings.database_url.get_secret_value()

    async def processed() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM processed_events") == 3 * n)
        finally:
            await conn.close()

    async with running(create_service(settings)):
        await eventually(processed, 60)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT kind, count(*) FROM ledger_entries GROUP BY kind")
    finally:
        await conn.close()
    assert {r["kind"]: r["count"] for r in rows} == {"commitment": n, "shipment": n}
