"""Failures that must neither stop the flow nor lose anything, against the real broker and database:
an event that the append cannot take, dead letters over the topic's size limit, levels published
late after a rebalance, and a relay host that dies holding the leader's lock."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from services.ledger import app as ledger_app
from services.ledger.adapters import postgres as ledger_postgres
from services.ledger.adapters.relay import Relay
from services.ledger.app import LedgerService
from shared.db import Connection
from shared.settings import Settings
from shared.topics import DLQ_SUFFIX, MAX_MESSAGE_BYTES, SCANS

from .. import events as ev
from ..kafka_io import eventually, produce, read_topic
from ..services import running
from .test_ledger_service import _balances, processed_count

pytestmark = pytest.mark.integration

KEEPALIVES = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")


async def test_the_relay_leader_s_connection_carries_tcp_keepalives(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leader's session advisory lock is released only when the server drops its connection:
    # after a host dies, the keepalives decide how soon another relay takes over.
    shown: dict[str, str] = {}

    class Probe(Relay):
        async def resume(self, conn: Connection) -> None:
            for name in (*KEEPALIVES, "tcp_user_timeout"):
                shown[name] = await conn.fetchval(f"SHOW {name}")
            await super().resume(conn)

    monkeypatch.setattr(ledger_app, "Relay", Probe)
    configured = Settings(
        **{
            **settings.model_dump(),
            "database_url": settings.database_url.get_secret_value(),
            "db_keepalives_idle_s": 7,
            "db_keepalives_interval_s": 3,
            "db_keepalives_count": 4,
        }
    )
    async with running(LedgerService(configured, ingest=False, relay=True)):
        await eventually(lambda: _true(bool(shown)), seconds=15)
    assert shown == {
        "tcp_keepalives_idle": "7",
        "tcp_keepalives_interval": "3",
        "tcp_keepalives_count": "4",
        "tcp_user_timeout": "19000",  # idle + interval x count: unacknowledged data gives up too
    }


async def _true(value: bool) -> bool:
    return value


async def test_an_event_the_append_cannot_take_is_dead_lettered_and_the_rest_appended_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One event makes the rules raise (a bug, not the database going away): the batch around it
    # is split until that event is alone, which goes to the dead-letter topic with the error; the
    # others are appended exactly once and the flow goes on. A connection reset is retried.
    events = [ev.received("MUG", "UK", 1) for _ in range(19)]
    poison = ev.received("MUG", "UK", 1)
    events.insert(11, poison)
    fold = ledger_postgres.fold  # type: ignore[attr-defined]
    calls = {"reset": 0, "poison": 0}

    def failing_fold(state: Any, batch: list[Any]) -> list[Any]:
        if calls["reset"] == 0:
            calls["reset"] += 1
            raise ConnectionResetError("connection reset by peer")
        if any(str(e.event_id) == poison["event_id"] for e in batch):
            calls["poison"] += 1
            raise ValueError("a rule that cannot handle this event")
        return fold(state, batch)

    monkeypatch.setattr(ledger_postgres, "fold", failing_fold)
    p = settings.topic_prefix
    async with running(LedgerService(settings, ingest=True, relay=False)):
        await produce(
            settings.kafka_bootstrap_servers,
            p + SCANS,
            [(f"key-{i}".encode(), orjson.dumps(e)) for i, e in enumerate(events)],
        )
        await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 1, 20)
        await eventually(lambda: _at_least(processed_count(settings), 19), seconds=20)
        later = ev.received("MUG", "UK", 5)
        await produce(
            settings.kafka_bootstrap_servers, p + SCANS, [(b"later", orjson.dumps(later))]
        )
        await eventually(lambda: _at_least(processed_count(settings), 20), seconds=20)
        await asyncio.sleep(0.5)
    dead = await read_all(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX)
    assert await processed_count(settings) == 20
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 19 + 5}}
    assert len(dead) == 1, [r.value for r in dead]
    record = dead[0]
    headers = dict(record.headers)
    assert record.key == b"key-11"
    assert record.value == orjson.dumps(poison)
    assert headers["error.reason"] == b"internal"
    assert b"a rule that cannot handle this event" in headers["error.detail"]
    assert calls["poison"] >= 1


def _padded_to(limit: int, key: bytes, value: bytes, header: str | None) -> tuple[bytes, Any]:
    """``value`` (or, with ``header``, that header) padded until the record's size estimate, an
    upper bound of what the broker counts, is ``limit``."""
    pad = 0
    while True:
        headers = [(header, b"h" * pad)] if header else []
        padded = value if header else value + b"[" * pad
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, padded, headers)
        if size >= limit:
            return padded, headers
        pad += limit - size


async def test_dead_letters_over_the_topic_s_size_limit_are_shortened_never_lost(
    settings: Settings,
) -> None:
    # Two rejected records that fit the input topic (up to its 2 MiB + 4 KiB) but not once the
    # error headers are added: one for its own large header (dropped, the value kept whole), one
    # for its value (cut to what fits, marked as cut). Neither stops the flow.
    limit = int(MAX_MESSAGE_BYTES)
    big_header_value, big_headers = _padded_to(limit - 40, b"A", b"[" * 1_500_000, "trace")
    big_value, _ = _padded_to(limit - 10, b"B", b"[", None)
    p = settings.topic_prefix
    async with running(LedgerService(settings, ingest=True, relay=False)):
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        try:
            sent = [
                await producer.send(p + SCANS, big_header_value, key=b"A", headers=big_headers),
                await producer.send(p + SCANS, big_value, key=b"B"),
            ]
            await asyncio.gather(*sent)  # the input topic takes both
        finally:
            await producer.stop()
        good = ev.received("MUG", "UK", 2)
        await produce(settings.kafka_bootstrap_servers, p + SCANS, [(b"MUG", orjson.dumps(good))])
        await eventually(lambda: _at_least(processed_count(settings), 1), seconds=30)
        await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 2, 10)
    dead = {
        r.key: r for r in await read_all(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX)
    }
    assert sorted(dead) == [b"A", b"B"]
    whole = dead[b"A"]
    headers = dict(whole.headers)
    assert whole.value == big_header_value
    assert headers["error.reason"] == b"too_large"
    assert headers["error.truncated"] == b"headers"
    assert "trace" not in headers
    cut = dead[b"B"]
    headers = dict(cut.headers)
    assert headers["error.reason"] == b"too_large"
    assert headers["error.truncated"] == b"value"
    assert headers["error.original_size"] == str(len(big_value)).encode()
    assert big_value.startswith(cut.value)
    assert len(big_value) - 1000 < len(cut.value) < len(big_value)
    assert headers["error.detail"]
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 2}}


async def read_all(bootstrap: str, topic: str, partitions: int = 1) -> list[Any]:
    """Every record of ``topic`` up to its end now (a dead-letter topic has one partition)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[Any] = []
        async with asyncio.timeout(30):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _at_least(count: Any, n: int) -> bool:
    return int(await count) >= n
