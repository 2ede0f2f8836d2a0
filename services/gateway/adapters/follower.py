"""Follows our output topics and records, per registered endpoint, the deliveries each event
calls for, committing the offsets only once PostgreSQL has them: at least once, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from shared.kafka import Record, commit, consume_batches, json_values, next_offsets
from shared.runner import retry
from shared.settings import Settings
from shared.topics import REPLENISHMENT_REQUESTS

from ..domain.deliveries import Message, message_of, wants
from .store import GatewayStore

log = logging.getLogger(__name__)


async def follow(
    consumer: AIOKafkaConsumer,
    store: GatewayStore,
    settings: Settings,
    stopping: asyncio.Event,
    recorded: Callable[[], None],
) -> None:
    prefix = settings.topic_prefix

    async def enqueue(records: list[Record]) -> int:
        endpoints = await store.endpoints()
        deliveries: list[tuple[str, Message]] = []
        requests: list[tuple[str, str, str]] = []
        for record in records:
            topic = record.topic.removeprefix(prefix)
            values = json_values([record])
            if not values:
                continue
            value = values[0]
            if topic == REPLENISHMENT_REQUESTS and isinstance(value, dict):
                data = value.get("data")
                if isinstance(data, dict) and {"request_id", "sku", "location"} <= data.keys():
                    requests.append((str(data["request_id"]), data["sku"], data["location"]))
            message = message_of(topic, value)
            if message is None:
                continue
            deliveries += [(e.name, message) for e in endpoints if wants(e, message)]
        return await store.enqueue(deliveries, requests)

    async def handle(records: list[Record]) -> bool:
        added = await retry("recording deliveries", stopping, enqueue, records)
        if added is None:
            return False
        if added:
            recorded()
        await commit(consumer, next_offsets(records))
        return True

    await consume_batches(
        consumer, stopping, handle, settings.batch_max_records, settings.batch_timeout_ms
    )
