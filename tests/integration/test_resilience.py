"""Failures that must neither stop the flow nor lose anything, against the real broker and database:
an event that the append cannot take, dead letters over the topic's size limit, levels published
late after a rebalance, and a relay host that dies holding the leader's lock."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from services.ledger import app as ledger_app
from services.ledger.adapters import postgres as ledger_postgres
from services.ledger.adapters.relay import Relay
from services.ledger.app import LedgerService
from services.projector.adapters.consumer import ProjectorConsumer
from services.projector.adapters.store import ReadModel
from services.projector.metrics import ProjectorMetrics
from shared.db import Connection
from shared.kafka import dead_letter, dead_letter_producer, producer
from shared.settings import Settings
from shared.topics import DLQ_SUFFIX, LEVELS, MAX_MESSAGE_BYTES, SCANS

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


class _NoCommits:
    """A Kafka consumer's commit, for a projector driven batch by batch."""

    async def commit(self, offsets: Any) -> None:
        return None

    def assignment(self) -> set[Any]:
        return set()


def _ledger_record(offset: int, position: int, on_hand: int) -> SimpleNamespace:
    entry = {
        "position": position,
        "entry_id": f"e{position}",
        "sku": "MUG",
        "location": "UK",
        "kind": "received",
        "deltas": {"on_hand": on_hand},
        "occurred_at": "2011-07-01T08:00:00Z",
        "recorded_at": "2011-07-01T08:00:00Z",
    }
    return SimpleNamespace(topic="ledger", partition=0, offset=offset, value=orjson.dumps(entry))


async def test_a_level_published_late_by_a_former_owner_never_follows_a_newer_one(
    settings: Settings,
) -> None:
    # A rebalance moves a ledger partition from one projector to another while the first is
    # still publishing the levels of its last batch (a slow broker). The new owner applies the
    # same entries and a later one; the level it publishes must stay the item's last level on
    # the compacted topic, however late the old owner's publish lands.
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=4
    )
    producers = [producer(settings), producer(settings)]
    topic = settings.topic_prefix + LEVELS
    projectors = [
        ProjectorConsumer(
            _NoCommits(),
            p,
            ReadModel(pool),
            ProjectorMetrics.create(),
            topic,
            100,
            20,
        )
        for p in producers
    ]
    old_owner, new_owner = projectors
    publishing, slow_broker = asyncio.Event(), asyncio.Event()
    publish = old_owner._publish

    async def slow_publish(levels: list[asyncpg.Record]) -> None:
        publishing.set()
        await slow_broker.wait()
        await publish(levels)

    old_owner._publish = slow_publish  # type: ignore[method-assign]
    stopping = asyncio.Event()
    try:
        for p in producers:
            await p.start()
        first = [_ledger_record(0, 1, 5)]
        late = asyncio.create_task(old_owner.handle(first, stopping))
        await asyncio.wait_for(publishing.wait(), 10)
        newer = asyncio.create_task(new_owner.handle([*first, _ledger_record(1, 2, 3)], stopping))
        await asyncio.wait({newer}, timeout=1.0)
        slow_broker.set()
        assert await late
        assert await newer
    finally:
        for p in producers:
            await p.stop()
        await pool.close()
    published = await read_all(settings.kafka_bootstrap_servers, topic, partitions=6)
    positions = [orjson.loads(r.value)["position"] for r in published if r.key == b"UK|MUG"]
    assert positions == sorted(positions)
    assert positions[-1] == 2


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
        await produce(
            settings.kafka_bootstrap_servers,
            p + SCANS,
            [(b"MUG", orjson.dumps(good)), (b"C", b"{not json")],
        )
        await eventually(lambda: _at_least(processed_count(settings), 1), seconds=30)
        await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 3, 10)
    dead = {
        r.key: r for r in await read_all(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX)
    }
    assert sorted(dead) == [b"A", b"B", b"C"]
    assert dead[b"C"].value == b"{not json"
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


async def test_a_dead_letter_the_broker_refuses_as_too_large_is_shortened_and_the_next_sent(
    settings: Settings,
) -> None:
    # The topic's limit lower than the ledger takes it to be (an operator set it so): the broker
    # refuses the dead letter, which goes out shortened, and the producer sends the next ones.
    limit = int(MAX_MESSAGE_BYTES)
    topic = settings.topic_prefix + SCANS
    original, _ = _padded_to(limit - 10, b"big", b"[", None)
    big = SimpleNamespace(
        topic=topic, partition=0, offset=1, key=b"big", value=original, headers=[]
    )
    before, after = (
        SimpleNamespace(topic=topic, partition=0, offset=n, key=key, value=b"{", headers=[])
        for n, key in ((0, b"before"), (2, b"after"))
    )
    dlq = dead_letter_producer(settings)
    await dlq.start()
    try:
        async with asyncio.timeout(20):
            assert await dead_letter(dlq, [(before, "invalid_json", "not JSON")]) == 1
            assert await dead_letter(dlq, [(big, "too_large", "too large")], limit=2 * limit) == 1
            assert await dead_letter(dlq, [(after, "invalid_json", "not JSON")]) == 1
    finally:
        await dlq.stop()
    dead = {r.key: r for r in await read_all(settings.kafka_bootstrap_servers, topic + DLQ_SUFFIX)}
    assert sorted(dead) == [b"after", b"before", b"big"]
    assert original.startswith(dead[b"big"].value)
    assert dict(dead[b"big"].headers)["error.truncated"] == b"value"
    assert dead[b"after"].value == b"{"


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


async def test_levels_that_fail_to_publish_leave_the_batch_applied_and_go_out_next_time(
    database_url: str,
) -> None:
    entry = {"position": 1, "sku": "MUG", "location": "UK", "deltas": {"on_hand": 4}}
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    published: list[list[asyncpg.Record]] = []

    async def broker_away(levels: list[asyncpg.Record]) -> None:
        raise ConnectionResetError("broker away")

    async def broker_back(levels: list[asyncpg.Record]) -> None:
        published.append(levels)

    try:
        model = ReadModel(pool)
        with pytest.raises(ConnectionResetError):
            await model.apply([entry], publish=broker_away)
        assert await pool.fetchval("SELECT on_hand FROM stock_levels WHERE sku = 'MUG'") == 4
        changed, _ = await model.apply([entry], publish=broker_back)
    finally:
        await pool.close()
    assert changed == {}
    assert [(r["on_hand"], r["position"]) for r in published[0]] == [(4, 1)]
