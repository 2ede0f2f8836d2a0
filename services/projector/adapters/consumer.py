"""The projector's Kafka edge: ledger entries in, levels out, offsets committed last.

Per batch: apply to the read model (one transaction), publish the current level of every item
the batch touched before that transaction commits (its items' rows still locked, so that after a
rebalance the new owner's levels always follow the former owner's: see adapters/store.py), then
commit the offsets. A crash anywhere redelivers the batch; the read model ignores what it already
has, and the levels are published again (the topic is compacted).

Offsets are committed after the batches they cover, but at most once every
:data:`COMMIT_EVERY_S` while entries keep coming, once the stream is that long quiet, and when
the consumer stops. Each commit is a request the broker writes to its offsets topic; a crash or
rebalance redelivers at most that much more, which the read model's positions skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from shared.kafka import Record, commit, consume_batches, json_values, next_offsets, send_keyed
from shared.metrics import observe_many
from shared.runner import retry, sleep_unless

from ..metrics import ProjectorMetrics
from .store import ReadModel

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 1.0
"""How often, at most, the offsets of applied batches are committed while entries keep coming:
one commit a batch cost the broker about 0.1 ms of CPU each, some 5 ms per 1,000 entries at
50 batches a second."""


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
        commit_every_s: float = COMMIT_EVERY_S,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.model = model
        self.metrics = metrics
        self.levels_topic = levels_topic
        self.batch_max_records = batch_max_records
        self.batch_timeout_ms = batch_timeout_ms
        self.commit_every_s = commit_every_s
        self._pending: dict[TopicPartition, int] = {}  # applied, not yet committed
        self._committed_at = -float("inf")
        self._committing = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        quiet = asyncio.create_task(self._commit_when_quiet(stopping))
        try:
            await consume_batches(
                self.consumer,
                stopping,
                functools.partial(self.handle, stopping=stopping),
                self.batch_max_records,
                self.batch_timeout_ms,
            )
        finally:
            quiet.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await quiet
            try:
                await self.commit_pending()  # what was applied before stopping
            except KafkaError as exc:
                log.warning("offsets not committed at stop", extra={"error": str(exc)})

    async def commit_pending(self) -> None:
        """Commit the offsets of the batches applied so far, of the partitions still assigned
        (a revoked one's are its new owner's to commit). Offsets that fail to commit stay
        pending unless newer ones have come meanwhile."""
        async with self._committing:
            offsets, self._pending = self._pending, {}
            self._committed_at = time.monotonic()
            assigned = self.consumer.assignment()
            try:
                await commit(self.consumer, {tp: o for tp, o in offsets.items() if tp in assigned})
            except BaseException:
                for tp, offset in offsets.items():
                    self._pending.setdefault(tp, offset)
                raise

    async def _commit_when_quiet(self, stopping: asyncio.Event) -> None:
        """Commit what a busy stream left pending once it has been that long without a commit."""
        while not await sleep_unless(stopping, self.commit_every_s):
            if self._pending and time.monotonic() - self._committed_at >= self.commit_every_s:
                try:
                    await self.commit_pending()
                except KafkaError as exc:
                    log.warning("offsets not committed; trying later", extra={"error": str(exc)})

    async def handle(self, records: list[Record], stopping: asyncio.Event) -> bool:
        entries = json_values(records)
        started = time.perf_counter()
        applied = await retry("applying a batch", stopping, self._apply, entries)
        if applied is None:
            return False  # stopping: nothing committed, the batch is redelivered
        changed = applied
        self._pending.update(next_offsets(records))
        if time.monotonic() - self._committed_at >= self.commit_every_s:
            await self.commit_pending()
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
