"""Publishes committed ledger entries to ``stock.ledger.v1`` in position order.

Appends are serialized by the append lock (see postgres.py), so a row with a lower position never
commits after one with a higher position: tailing ``position > last`` skips nothing. One relay
publishes at a time (a session advisory lock elects it); it stores the last published position
after the broker has acknowledged every entry up to it, so a crash republishes at most the last
batch (consumers deduplicate by position).
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.db import Connection
from shared.events.ledger import dumps, entry_message
from shared.kafka import send_keyed
from shared.outbox import OutboxPublisher

from ..metrics import LedgerMetrics
from .postgres import NOTIFY_CHANNEL

RELAY_LOCK = 7_300_200
RELAY_NAME = "stock.ledger.v1"

_FETCH = """
SELECT position, entry_id, sku, location, kind, on_hand, committed, damaged, quality_control,
       incoming, occurred_at, recorded_at, source_event_id, source_type, reference, detail
FROM ledger_entries WHERE position > $1 ORDER BY position LIMIT $2
"""


class Relay(OutboxPublisher):
    lock_id = RELAY_LOCK
    channel = NOTIFY_CHANNEL

    def __init__(
        self,
        database_url: str,
        producer: AIOKafkaProducer,
        topic: str,
        metrics: LedgerMetrics,
        batch_size: int = 5000,
        session_settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(database_url, session_settings)
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.batch_size = batch_size
        self.position = 0

    async def resume(self, conn: Connection) -> None:
        self.position = await conn.fetchval(
            "SELECT coalesce(max(position), 0) FROM relay_positions WHERE relay = $1", RELAY_NAME
        )

    async def publish_once(self, conn: Connection) -> int:
        rows = await conn.fetch(_FETCH, self.position, self.batch_size)
        if rows:
            await send_keyed(
                self.producer,
                self.topic,
                [(f"{r['location']}|{r['sku']}".encode(), dumps(entry_message(r))) for r in rows],
            )
            self.position = rows[-1]["position"]
            await conn.execute(
                "INSERT INTO relay_positions (relay, position) VALUES ($1, $2)"
                " ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position",
                RELAY_NAME,
                self.position,
            )
            self.metrics.relay_published.inc(len(rows))
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_entries")
        self.metrics.relay_position.set(self.position)
        self.metrics.relay_lag.set(max(0, head - self.position))
        return len(rows)
