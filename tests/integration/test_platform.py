"""The platform itself: the real broker and server answer, and behave as the services rely on."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.migrate import migrate, migration_files
from shared.topics import LEVELS, SCANS, topic_specs

from ..conftest import Servers

pytestmark = pytest.mark.integration


async def consume(
    servers: Servers, topic: str, group: str, count: int
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers.kafka,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500, max_records=count - len(got))
                for records in batch.values():
                    got.extend((r.key, r.value) for r in records)
        await consumer.commit()
        return got
    finally:
        await consumer.stop()


async def test_a_consumer_restarted_resumes_at_its_committed_offset(
    servers: Servers, topic_prefix: str
) -> None:
    topic = topic_prefix + SCANS
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"loc|sku", partition=0)
    finally:
        await producer.stop()

    group = f"{topic_prefix}group"
    first = await consume(servers, topic, group, 4)
    second = await consume(servers, topic, group, 6)

    assert [v for _, v in first + second] == [f"v{i}".encode() for i in range(10)]
    assert {k for k, _ in first + second} == {b"loc|sku"}

    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka, group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 10
    finally:
        await consumer.stop()


async def test_every_contract_topic_exists_and_levels_are_compacted(
    servers: Servers, topic_prefix: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        assert {s.name for s in topic_specs(topic_prefix)} <= existing
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_prefix + LEVELS)]
        )
        configs = {name: value for name, value, *_ in described[0].resources[0][4]}
        assert configs["cleanup.policy"] == "compact"
    finally:
        await admin.close()


async def test_a_row_round_trips_through_postgresql(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE probe (id uuid PRIMARY KEY, sku text, qty bigint)")
        row_id = uuid.uuid4()
        await conn.execute("INSERT INTO probe VALUES ($1, $2, $3)", row_id, "BANK CHARGES", 7)
        row = await conn.fetchrow("SELECT sku, qty FROM probe WHERE id = $1", row_id)
    finally:
        await conn.close()
    assert row is not None
    assert (row["sku"], row["qty"]) == ("BANK CHARGES", 7)


async def test_migrations_run_twice_apply_each_file_once(database_url: str) -> None:
    assert await migrate(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert sorted(versions) == [p.stem for p in migration_files()]
