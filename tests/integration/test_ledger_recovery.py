"""Crashes and races: the ledger survives kill -9, and the relay never skips a late commit."""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import subprocess
from pathlib import Path

import asyncpg
import orjson
import pytest
from confluent_kafka import Producer

from services.ledger.adapters.postgres import PostgresLedgerStore
from services.ledger.adapters.relay import Relay
from services.ledger.adapters.store import Accepted
from services.ledger.metrics import LedgerMetrics
from shared.kafka import producer
from shared.settings import Settings
from shared.topics import LEDGER, ORDERS, SCANS

from .. import events as ev
from ..kafka_io import eventually, produce_events, read_topic
from ..reference import random_history, reference_balances
from ..services import start_process
from .test_ledger_service import _balances, processed_count, running, topic_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def start_ledger(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return start_process("ledger", settings, log, STOCKLEDGER_BATCH_MAX_RECORDS="400")


async def ledger_matches_balances(settings: Settings) -> None:
    """The ledger's entries, summed per item, are exactly the running balances."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        sums = await conn.fetch(
            "SELECT sku, location, sum(on_hand) AS on_hand, sum(committed) AS committed,"
            " sum(damaged) AS damaged, sum(quality_control) AS quality_control,"
            " sum(incoming) AS incoming FROM ledger_entries GROUP BY sku, location"
        )
    finally:
        await conn.close()
    from_entries = {
        (r["sku"], r["location"]): {k: int(r[k]) for k in list(r.keys())[2:] if r[k]} for r in sums
    }
    assert {k: v for k, v in from_entries.items() if v} == await _balances(settings)


async def test_a_ledger_killed_mid_batch_resumes_and_records_every_event_once(
    settings: Settings, tmp_path: Path
) -> None:
    history = random_history(random.Random(21), 20_000)
    p = settings.topic_prefix
    for topic in (SCANS, ORDERS):
        await produce_events(
            settings.kafka_bootstrap_servers,
            p + topic,
            [e for e in history if topic_of(e) == topic],
        )
    from shared.topics import REPLENISHMENT_UPDATES

    await produce_events(
        settings.kafka_bootstrap_servers,
        p + REPLENISHMENT_UPDATES,
        [e for e in history if topic_of(e) == REPLENISHMENT_UPDATES],
    )
    kills = 0
    for _ in range(3):
        proc = start_ledger(settings, tmp_path / "ledger.log")
        target = await processed_count(settings) + 1500
        await eventually(functools.partial(_above, settings, target), seconds=60)
        await asyncio.sleep(random.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = start_ledger(settings, tmp_path / "ledger.log")
    try:
        await eventually(lambda: _above(settings, len(history)), seconds=120)
        await asyncio.sleep(1)  # anything more would be a duplicate
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert kills == 3
    assert await processed_count(settings) == len(history)
    assert await _balances(settings) == reference_balances(history)
    await ledger_matches_balances(settings)


async def _above(settings: Settings, n: int) -> bool:
    return await processed_count(settings) >= n


async def test_the_relay_publishes_every_entry_once_despite_late_commits(
    settings: Settings,
) -> None:
    url = settings.database_url.get_secret_value()
    pool = await asyncpg.create_pool(url, min_size=6, max_size=6)
    relay_producer = producer(settings)
    await relay_producer.start()
    relay = Relay(
        url, relay_producer, settings.topic_prefix + LEDGER, LedgerMetrics.create(), batch_size=50
    )
    stopping = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stopping))
    store = PostgresLedgerStore(pool)
    rng = random.Random(8)

    async def writer(n: int) -> None:
        for i in range(25):
            async with pool.acquire() as conn, conn.transaction():
                events = [
                    ev.received(f"SKU-{n}-{i % 3}", "UK", 1) for _ in range(rng.randint(1, 4))
                ]
                await store.append_on(conn, [Accepted(SCANS, ev.parse(e)) for e in events])
                await asyncio.sleep(rng.uniform(0, 0.03))  # commit late, holding the position

    try:
        await asyncio.gather(*(writer(n) for n in range(6)))
        head = await pool.fetchval("SELECT max(position) FROM ledger_entries")
        total = await pool.fetchval("SELECT count(*) FROM ledger_entries")
        await eventually(lambda: _relayed(relay, head), seconds=30)
    finally:
        stopping.set()
        await relay_task
        await relay_producer.stop()
        await pool.close()
    published = await read_topic(
        settings.kafka_bootstrap_servers, settings.topic_prefix + LEDGER, total
    )
    positions = [orjson.loads(r.value)["position"] for r in published]
    assert len(positions) == len(set(positions)) == total
    per_partition: dict[int, list[int]] = {}
    for r in published:
        per_partition.setdefault(r.partition, []).append(orjson.loads(r.value)["position"])
    assert all(ps == sorted(ps) for ps in per_partition.values())


async def _relayed(relay: Relay, head: int) -> bool:
    return relay.position >= head


async def test_an_upstream_producer_that_is_not_ours_is_understood(settings: Settings) -> None:
    placed = ev.placed("O-77", "UK", [("1", "MUG", 2), ("2", "BANK CHARGES", 1)])
    receipt = ev.received("MUG", "UK", 10)
    upstream = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
    )
    upstream.produce(settings.topic_prefix + SCANS, orjson.dumps(receipt), key=b"UK|MUG")
    upstream.produce(settings.topic_prefix + ORDERS, orjson.dumps(placed), key=b"O-77")
    assert upstream.flush(30) == 0
    async with running(settings):
        await eventually(lambda: _above(settings, 2))
    assert await _balances(settings) == {
        ("MUG", "UK"): {"on_hand": 10, "committed": 2},
        ("BANK CHARGES", "UK"): {"committed": 1},
    }
