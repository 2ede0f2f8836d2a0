"""The projector's Kafka edge: ledger entries in, levels out, offsets committed last.

Per batch: apply to the read model (one transaction), publish the current level of every item
the batch touched before that transaction commits (its items' rows still locked, so that after a
rebalance the new owner's levels always follow the former owner's: see adapters/store.py), then
commit the offsets. A crash anywhere redelivers the batch; the read model ignores what it already
has, and the levels are published again (the topic is compacted).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import Record, commit, consume_batches, json_values, next_offsets, send_keyed
from shared.metrics import observe_many
from shared.runner import retry

from ..metrics import ProjectorMetrics
from .store import ReadModel

log = logging.getLogger(__name__)


def level_message(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "location": row["location"],
        "on_hand": row["on_hand"],
        "committed": row["committed"],
        "damaged": row["damaged"],
        "quality_control": row["quality_control"],
        "incoming": row["incoming"],
        "available": row["available"],
        "position": row["position"],
        "updated_at": row["updated_at"].isoformat().replace("+00:00", "Z"),
    }


def level_bytes(row: asyncpg.Record) -> bytes:
    """:func:`level_message` as JSON, for a row of exactly the columns ``LEVELS`` (a level as the
    read model returns it for publishing): orjson writes the columns in order, and the time
    in the same RFC 3339 form, without a dict built field by field."""
    return orjson.dumps(dict(row.items()), option=orjson.OPT_UTC_Z)


class ProjectorConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        model: ReadModel,
        metrics: ProjectorMetrics,
        levels_topic: str,
        batch_max_records: int,
        batch_timeout_ms: int,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.model = model
        self.metrics = metrics
        self.levels_topic = levels_topic
        self.batch_max_records = batch_max_records
        self.batch_timeout_ms = batch_timeout_ms

    async def run(self, stopping: asyncio.Event) -> None:
        await consume_batches(
            self.consumer,
            stopping,
            functools.partial(self.handle, stopping=stopping),
            self.batch_max_records,
            self.batch_timeout_ms,
        )

    async def handle(self, records: list[Record], stopping: asyncio.Event) -> bool:
        entries = json_values(records)
        started = time.perf_counter()
        applied = await retry("applying a batch", stopping, self._apply, entries)
        if applied is None:
            return False  # stopping: nothing committed, the batch is redelivered
        changed = applied
        await commit(self.consumer, next_offsets(records))
        self._observe(entries, changed, time.perf_counter() - started)
        return True

    async def _apply(self, entries: list[dict[str, Any]]) -> dict[Any, Any]:
        changed, _ = await self.model.apply(entries, publish=self._publish)
        return changed

    async def _publish(self, levels: list[asyncpg.Record]) -> None:
        sent = await send_keyed(
            self.producer,
            self.levels_topic,
            [(f"{row['location']}|{row['sku']}".encode(), level_bytes(row)) for row in levels],
        )
        self.metrics.levels_published.inc(sent)

    def _observe(
        self, entries: list[dict[str, Any]], changed: dict[Any, Any], seconds: float
    ) -> None:
        applied = sum(c.entries for c in changed.values())
        self.metrics.applied.inc(applied)
        self.metrics.skipped.inc(len(entries) - applied)
        self.metrics.apply_seconds.observe(seconds)
        now = datetime.now(UTC).timestamp()
        # an event's entries share a time, a transaction's entries too: each distinct time is
        # parsed and its latency worked out once, then counted as often as it came
        occurred = Counter(e.get("occurred_at") for e in entries)
        recorded = Counter(e.get("recorded_at") for e in entries)
        observe_many(self.metrics.event_to_visible, _ages(occurred, now))
        observe_many(self.metrics.ledger_to_visible, _ages(recorded, now))


def _ages(times: Counter[Any], now: float) -> list[float]:
    """Seconds from each RFC 3339 time ("Z" included, Python 3.11+) to ``now`` (at least 0), as
    many times as each came; a time missing or unreadable is left out."""
    ages: list[float] = []
    for value, count in times.items():
        try:
            age = max(0.0, now - datetime.fromisoformat(value).timestamp())
        except (TypeError, ValueError):
            continue
        ages += [age] * count
    return ages
