"""Publishes raised requests to ``replenishment.requests.v1`` in the order they were raised.

A request is marked published only after the broker has it, so a crash between the decision and
the publish sends it after restart, and one after the publish may send it again with the same
``event_id`` (consumers deduplicate by it, as for every input of the suite).
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from shared.db import Connection
from shared.outbox import OutboxPublisher

from ..metrics import ReplenisherMetrics
from .store import NOTIFY_CHANNEL

OUTBOX_LOCK = 7_300_300


class RequestOutbox(OutboxPublisher):
    lock_id = OUTBOX_LOCK
    channel = NOTIFY_CHANNEL
    batch_size = 1000

    def __init__(
        self,
        database_url: str,
        producer: AIOKafkaProducer,
        topic: str,
        metrics: ReplenisherMetrics,
        session_settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(database_url, session_settings)
        self.producer = producer
        self.topic = topic
        self.metrics = metrics

    async def publish_once(self, conn: Connection) -> int:
        rows = await conn.fetch(
            "SELECT request_id, sku, location, kind, message, reason->>'policy' AS policy"
            " FROM replenishment_requests WHERE published_at IS NULL ORDER BY seq LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        futures = [
            await self.producer.send(
                self.topic,
                orjson.dumps(orjson.loads(row["message"])),
                key=f"{row['location']}|{row['sku']}".encode(),
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "UPDATE replenishment_requests SET published_at = now()"
            " WHERE request_id = ANY($1::text[])",
            [row["request_id"] for row in rows],
        )
        for row in rows:
            self.metrics.requests.labels(row["kind"], row["policy"]).inc()
        return len(rows)
