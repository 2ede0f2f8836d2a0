"""Publishes committed ledger entries to ``stock.ledger.v1`` in position order.

Appends are serialized by the append lock (see postgres.py), so a row with a lower position never
commits after one with a higher position: tailing ``position > last`` skips nothing. One relay
publishes at a time (a session advisory lock elects it); it stores the last published position
after the broker has acknowledged every entry up to it, so a crash republishes at most the last
batch (consumers deduplicate by position).
"""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.db import Connection
from shared.kafka import send_keyed
from shared.outbox import OutboxPublisher

from ..metrics import LedgerMetrics
from .postgres import NOTIFY_CHANNEL

RELAY_LOCK = 7_300_200
RELAY_NAME = "stock.ledger.v1"


def _utc(column: str) -> str:
    """SQL for a ``timestamptz`` column as orjson writes it with ``OPT_UTC_Z``."""
    seconds = 'YYYY-MM-DD"T"HH24:MI:SS'
    return (
        f"to_char({column} AT TIME ZONE 'UTC', CASE WHEN date_part('microseconds', {column})::int"
        f" % 1000000 = 0 THEN '{seconds}\"Z\"' ELSE '{seconds}.US\"Z\"' END)"
    )


# Each entry's message is rendered by PostgreSQL, byte for byte as ``dumps(entry_message(row))``
# renders it (keys in that order, no blanks, times in UTC with ``Z`` and microseconds only when
# there are some, ``reference`` and ``detail`` only when set, ``detail`` as stored): decoding 16
# columns into Python objects and encoding them again cost the relay about half its CPU.
_FETCH = f"""
SELECT position, convert_to(location || '|' || sku, 'UTF8') AS key, convert_to(
  '{{"position":' || position || ',"entry_id":"' || entry_id || '","sku":' || to_json(sku)::text
  || ',"location":' || to_json(location)::text || ',"kind":' || to_json(kind)::text
  || ',"deltas":{{"on_hand":' || on_hand || ',"committed":' || committed
  || ',"damaged":' || damaged || ',"quality_control":' || quality_control
  || ',"incoming":' || incoming || '}},"occurred_at":"' || {_utc("occurred_at")}
  || '","recorded_at":"' || {_utc("recorded_at")}
  || '","source_event_id":"' || source_event_id || '","source_type":' || to_json(source_type)::text
  || coalesce(',"reference":' || to_json(reference)::text, '')
  || coalesce(',"detail":' || detail::text, '') || '}}', 'UTF8') AS message
FROM ledger_entries WHERE position > $1 ORDER BY position LIMIT $2
"""


async def rendered(conn: Connection, after: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` entries after position ``after``, in position order: each as its
    position, its key and its message, both in UTF-8."""
    return list(await conn.fetch(_FETCH, after, limit))


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
        rows = await rendered(conn, self.position, self.batch_size)
        if rows:
            await send_keyed(
                self.producer,
                self.topic,
                [(r[1], r[2]) for r in rows],
            )
            self.position = rows[-1][0]
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
