"""The ledger service end to end, against the real Kafka broker and PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import orjson
import pytest

from services.ledger.adapters.postgres import SESSION_SETTINGS
from services.ledger.app import create_service
from shared.settings import Settings
from shared.topics import DLQ_SUFFIX, LEDGER, ORDERS, REPLENISHMENT_UPDATES, SCANS

from .. import events as ev
from ..kafka_io import eventually, produce, produce_events, read_topic
from ..reference import random_history, reference_balances
from ..services import Service
from ..services import running as run_service
from ..unit.test_ledger_properties import as_dicts

pytestmark = pytest.mark.integration


def running(settings: Settings) -> AbstractAsyncContextManager[Service]:
    """The ledger service, running until the block ends."""
    return run_service(create_service(settings))


async def processed_count(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM processed_events"))
    finally:
        await conn.close()


def topic_of(event: dict[str, Any]) -> str:
    kind = event["type"].split(".")[0]
    return {"scan": SCANS, "order": ORDERS, "replenishment": REPLENISHMENT_UPDATES}[kind]


async def test_every_input_kind_flows_from_its_topic_to_the_ledger_topic(
    settings: Settings,
) -> None:
    history = random_history(__import__("random").Random(3), 300)
    p = settings.topic_prefix
    async with running(settings):
        for topic in (SCANS, ORDERS, REPLENISHMENT_UPDATES):
            await produce_events(
                settings.kafka_bootstrap_servers,
                p + topic,
                [e for e in history if topic_of(e) == topic],
            )
        await eventually(lambda: _count_is(settings, len(history)))
        store_balances = await _balances(settings)
        assert store_balances == reference_balances(history)
        entries = await _entry_count(settings)
        published = await read_topic(settings.kafka_bootstrap_servers, p + LEDGER, entries)
    positions = [orjson.loads(r.value)["position"] for r in published]
    assert len(positions) == len(set(positions)) == entries
    by_partition: dict[int, list[int]] = {}
    for r in published:
        by_partition.setdefault(r.partition, []).append(orjson.loads(r.value)["position"])
        message = orjson.loads(r.value)
        assert r.key == f"{message['location']}|{message['sku']}".encode()
    assert all(ps == sorted(ps) for ps in by_partition.values())


async def test_malformed_messages_go_to_the_dead_letter_topic_and_the_flow_goes_on(
    settings: Settings,
) -> None:
    p = settings.topic_prefix
    good = ev.received("MUG", "UK", 3)
    bad: list[tuple[bytes | None, bytes | None, str]] = [
        (b"k1", b"{not json", "invalid_json"),
        (b"k2", orjson.dumps({**ev.received("MUG", "UK", 1), "data": {"qty": "x"}}), "schema"),
        (
            b"k3",
            orjson.dumps({**ev.received("MUG", "UK", 1), "occurred_at": "2011-07-01 08:00"}),
            "schema",
        ),
        (b"k4", orjson.dumps(ev.received(" MUG", "UK", 1)), "schema"),
        (
            b"k5",
            orjson.dumps({**ev.received("MUG", "UK", 1), "type": "scan.beamed"}),
            "unknown_type",
        ),
        (b"k6", orjson.dumps({**ev.received("MUG", "UK", 1), "event_id": "not-a-uuid"}), "schema"),
        (b"k7", b"", "empty"),
        (b"k8", b"[1, 2, 3]", "schema"),
    ]
    async with running(settings):
        await produce(
            settings.kafka_bootstrap_servers,
            p + SCANS,
            [(k, v) for k, v, _ in bad] + [(b"MUG", orjson.dumps(good))],
        )
        dead = await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, len(bad))
        await eventually(lambda: _count_is(settings, 1))
    got = {r.key: (r.value, dict(r.headers)) for r in dead}
    for key, value, reason in bad:
        original, headers = got[key]
        assert original == value
        assert headers["error.reason"].decode() == reason
        assert headers["error.detail"]
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 3}}


async def test_the_ledger_reads_by_key_in_every_session_of_its_pool(settings: Settings) -> None:
    # the settings that keep a plan cached on a small table from scanning it as it grows
    # (test_ledger_store), on the connections the running service appends with
    service = create_service(settings)
    async with run_service(service):
        assert service.pool is not None
        async with service.pool.acquire() as first, service.pool.acquire() as second:
            for conn in (first, second):
                for name, value in SESSION_SETTINGS.items():
                    assert await conn.fetchval(f"SHOW {name}") == value


async def test_the_same_event_five_times_on_two_topics_is_recorded_once(
    settings: Settings,
) -> None:
    p = settings.topic_prefix
    receipt = ev.received("MUG", "UK", 4)
    async with running(settings):
        await produce_events(settings.kafka_bootstrap_servers, p + SCANS, [receipt] * 3)
        await produce_events(settings.kafka_bootstrap_servers, p + ORDERS, [receipt] * 2)
        await produce_events(
            settings.kafka_bootstrap_servers, p + SCANS, [ev.received("X", "UK", 1)]
        )
        await eventually(lambda: _count_is(settings, 2))
        await asyncio.sleep(0.5)
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 4}, ("X", "UK"): {"on_hand": 1}}


async def test_two_instances_in_one_group_lose_and_duplicate_nothing(settings: Settings) -> None:
    import random

    history = random_history(random.Random(5), 3000)
    p = settings.topic_prefix
    async with running(settings), running(settings):
        for topic in (SCANS, ORDERS, REPLENISHMENT_UPDATES):
            await produce_events(
                settings.kafka_bootstrap_servers,
                p + topic,
                [e for e in history if topic_of(e) == topic],
            )
        await eventually(lambda: _count_is(settings, len(history)), seconds=60)
    assert await _balances(settings) == reference_balances(history)


async def _count_is(settings: Settings, n: int) -> bool:
    return await processed_count(settings) >= n


async def _entry_count(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger_entries"))
    finally:
        await conn.close()


async def _balances(settings: Settings) -> dict[tuple[str, str], dict[str, int]]:
    from services.ledger.adapters.postgres import PostgresLedgerStore

    pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1)
    try:
        return as_dicts(await PostgresLedgerStore(pool).balances())
    finally:
        await pool.close()


async def test_a_reused_event_id_with_other_content_is_dead_lettered_as_a_conflict(
    settings: Settings,
) -> None:
    p = settings.topic_prefix
    receipt = ev.received("MUG", "UK", 4)
    reused = {**receipt, "data": {**receipt["data"], "qty": 9}}
    async with running(settings):
        await produce_events(settings.kafka_bootstrap_servers, p + SCANS, [receipt])
        await eventually(lambda: _count_is(settings, 1))
        await produce(
            settings.kafka_bootstrap_servers,
            p + SCANS,
            [(b"again", orjson.dumps(receipt)), (b"reused", orjson.dumps(reused))],
        )
        [dead] = await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 1)
        await produce_events(
            settings.kafka_bootstrap_servers, p + SCANS, [ev.received("X", "UK", 1)]
        )
        await eventually(lambda: _count_is(settings, 2))
        await asyncio.sleep(0.5)
    assert (dead.key, dead.value) == (b"reused", orjson.dumps(reused))
    headers = dict(dead.headers)
    assert headers["error.reason"] == b"conflict"
    assert receipt["event_id"].encode() in headers["error.detail"]
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 4}, ("X", "UK"): {"on_hand": 1}}
    with pytest.raises(TimeoutError):  # the exact redelivery stayed a silent duplicate
        await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 2, seconds=2)


async def test_an_inspection_of_more_than_quality_control_holds_is_dead_lettered(
    settings: Settings,
) -> None:
    p = settings.topic_prefix
    too_many = ev.inspected("MUG", "UK", 3, "sellable")
    async with running(settings):
        await produce_events(
            settings.kafka_bootstrap_servers, p + SCANS, [ev.returned("MUG", "UK", 2, "inspect")]
        )
        await eventually(lambda: _count_is(settings, 1))
        await produce(
            settings.kafka_bootstrap_servers, p + SCANS, [(b"qc", orjson.dumps(too_many))]
        )
        [dead] = await read_topic(settings.kafka_bootstrap_servers, p + SCANS + DLQ_SUFFIX, 1)
        await produce_events(
            settings.kafka_bootstrap_servers, p + SCANS, [ev.inspected("MUG", "UK", 2, "damaged")]
        )
        await eventually(lambda: _count_is(settings, 3))
        await asyncio.sleep(0.5)
    assert (dead.key, dead.value) == (b"qc", orjson.dumps(too_many))
    headers = dict(dead.headers)
    assert headers["error.reason"] == b"schema"
    assert headers["error.detail"] == b"qty 3 is more than quality_control holds (2)"
    assert await _balances(settings) == {("MUG", "UK"): {"on_hand": 2, "damaged": 2}}
