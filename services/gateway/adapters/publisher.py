"""Publishes input events through the idempotent producer and returns once Kafka has them all:
a 2xx the gateway sends after this means the events cannot be lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaProducer

from ..domain.events import Routed
from ..metrics import GatewayMetrics


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, prefix: str, metrics: GatewayMetrics) -> None:
        self.producer = producer
        self.prefix = prefix
        self.metrics = metrics

    async def publish(self, events: Sequence[Routed], origin: str) -> None:
        futures = [
            await self.producer.send(
                self.prefix + e.topic,
                orjson.dumps(e.event) if e.value is None else e.value,
                key=e.key.encode(),
            )
            for e in events
        ]
        await asyncio.gather(*futures)
        for e in events:
            self.metrics.published_of(e.topic, origin).inc()
