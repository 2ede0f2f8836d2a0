"""Scratch databases and topics for a benchmark part, dropped at the end."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options
from shared.migrate import migrate
from shared.settings import Settings
from shared.topics import create_topics, topic_specs

from .processes import free_port


async def scratch_database(base: Settings, name: str, migrated: bool = True) -> str:
    url = base.database_url.get_secret_value()
    admin = await asyncpg.connect(url.rpartition("/")[0] + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    scratch = url.rpartition("/")[0] + "/" + name
    if migrated:
        await migrate(scratch)
    return scratch


async def drop_database(base: Settings, name: str) -> None:
    url = base.database_url.get_secret_value()
    admin = await asyncpg.connect(url.rpartition("/")[0] + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def drop_scratch(base: Settings, name: str, prefix: str) -> None:
    await drop_database(base, name)
    kafka = AIOKafkaAdminClient(**client_options(base))
    await kafka.start()
    try:
        await kafka.delete_topics([s.name for s in topic_specs(prefix)])
    finally:
        await kafka.close()


@contextlib.asynccontextmanager
async def scratch_stack(base: Settings, keep: bool) -> AsyncIterator[tuple[Settings, str, str]]:
    """A scratch database (migrated) and topics under a prefix of their own, dropped at the end
    unless ``keep``: (settings pointing at them, database URL, tag)."""
    tag = uuid.uuid4().hex[:8]
    name, prefix = f"bench_{tag}", f"bench{tag}."
    database_url = await scratch_database(base, name)
    settings = base.model_copy(
        update={
            "database_url": base.database_url.__class__(database_url),
            "topic_prefix": prefix,
            "consumer_group_prefix": f"{prefix}stockledger",
            "http_port": free_port(),
        }
    )
    try:
        client = client_options(settings)
        await create_topics(client.pop("bootstrap_servers"), prefix, **client)
        yield settings, database_url, tag
    finally:
        if not keep:
            await drop_scratch(base, name, prefix)
