"""Graceful shutdown: SIGTERM finishes the batch in flight, and commits nothing unfinished.

A stopped ledger has recorded exactly the events below its committed offsets: none recorded but
left uncommitted (they would be redelivered, harmless but a sign the drain was cut short), none
committed but not recorded (lost). A batch waiting inside its transaction when the signal comes is
finished and committed before the service exits. A drain that cannot finish (the database does
not answer) is abandoned at the shutdown timeout, its transaction rolled back and no offset
committed, and the batch is recorded once after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.ledger.adapters.postgres import APPEND_LOCK
from shared.settings import Settings
from shared.topics import INPUT_TOPICS, topic_specs

from ..kafka_io import eventually, produce_events, read_topic
from ..reference import random_history
from ..services import start_process
from .test_ledger_service import processed_count, topic_of

pytestmark = pytest.mark.integration


async def produce_history(settings: Settings, size: int, seed: int) -> list[dict[str, Any]]:
    history = random_history(random.Random(seed), size)
    for topic in INPUT_TOPICS:
        await produce_events(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix + topic,
            [e for e in history if topic_of(e) == topic],
        )
    return history


async def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        partitions = [
            TopicPartition(s.name, p)
            for s in topic_specs(settings.topic_prefix)
            if s.name.removeprefix(settings.topic_prefix) in INPUT_TOPICS
            for p in range(s.partitions)
        ]
        found = await admin.list_consumer_group_offsets(
            f"{settings.consumer_group_prefix}.ledger", partitions=partitions
        )
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in found.items() if meta is not None and meta.offset > 0}


async def below_committed(settings: Settings, history: list[dict[str, Any]]) -> set[str]:
    """The event ids of the input records below the ledger's committed offsets."""
    committed = await committed_offsets(settings)
    ids: set[str] = set()
    for topic in INPUT_TOPICS:
        count = sum(1 for e in history if topic_of(e) == topic)
        records = await read_topic(
            settings.kafka_bootstrap_servers, settings.topic_prefix + topic, count
        )
        for r in records:
            if r.offset < committed.get(TopicPartition(r.topic, r.partition), 0):
                ids.add(orjson.loads(r.value)["event_id"])
    return ids


async def recorded(settings: Settings) -> set[str]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return {str(r[0]) for r in await conn.fetch("SELECT event_id FROM processed_events")}
    finally:
        await conn.close()


def stop(proc: subprocess.Popen[bytes], within: float) -> tuple[int, float]:
    """SIGTERM, then the exit code and how long the process took to exit."""
    began = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return code, time.perf_counter() - began


async def test_sigterm_mid_stream_leaves_exactly_the_committed_events_recorded(
    settings: Settings, tmp_path: Path
) -> None:
    history = await produce_history(settings, 60_000, seed=31)  # more than three stops ingest
    for attempt in range(3):
        proc = start_process(
            "ledger", settings, tmp_path / "ledger.log", STOCKLEDGER_BATCH_MAX_RECORDS="500"
        )
        target = await processed_count(settings) + 2_000
        await eventually(functools.partial(_at_least, settings, target), seconds=60)
        await asyncio.sleep(random.Random(attempt).uniform(0, 0.2))  # somewhere in a batch
        code, _ = stop(proc, within=30)
        assert code == 0, (tmp_path / "ledger.log").read_text()[-3000:]
        # drained: what is recorded is exactly what is committed, nothing left to redeliver
        assert await recorded(settings) == await below_committed(settings, history)
    assert 0 < len(await recorded(settings)) < len(history)


async def _at_least(settings: Settings, n: int) -> bool:
    return await processed_count(settings) >= n


async def test_sigterm_waits_for_the_batch_in_flight_and_commits_it(
    settings: Settings, tmp_path: Path
) -> None:
    history = await produce_history(settings, 1_500, seed=33)
    log = tmp_path / "ledger.log"
    async with holding_the_append_lock(settings) as blocker:
        proc = await ledger_stuck_in_its_batch(settings, blocker, log)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)  # stopping, with a batch in its transaction
        assert proc.poll() is None, "exited without finishing its batch"
    code, _ = stop(proc, within=30)  # the lock is free: the batch commits, then the service exits
    assert code == 0, log.read_text()[-3000:]
    done = await recorded(settings)
    assert done, "the batch in flight was not committed"
    assert done == await below_committed(settings, history)


async def ledger_stuck_in_its_batch(
    settings: Settings, blocker: asyncpg.Connection, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """A ledger process started while ``blocker`` holds the append lock, once its first batch
    waits for it inside its transaction."""
    proc = start_process("ledger", settings, log, **env)
    await eventually(lambda: _append_waits(blocker), seconds=60)
    return proc


@contextlib.asynccontextmanager
async def holding_the_append_lock(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """The ledger's append lock held by another session: a batch waits inside its transaction."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute("SELECT pg_advisory_lock($1, 0)", APPEND_LOCK)
        yield conn
    finally:
        await conn.execute("SELECT pg_advisory_unlock_all()")
        await conn.close()


async def test_a_drain_that_cannot_finish_is_abandoned_at_the_timeout_uncommitted(
    settings: Settings, tmp_path: Path
) -> None:
    history = await produce_history(settings, 1_500, seed=32)
    log = tmp_path / "ledger.log"
    async with holding_the_append_lock(settings) as blocker:
        proc = await ledger_stuck_in_its_batch(
            settings, blocker, log, STOCKLEDGER_SHUTDOWN_TIMEOUT_S="2"
        )
        code, seconds = stop(proc, within=30)
        assert code == 0, log.read_text()[-3000:]
        assert 2 <= seconds < 12, f"exited {seconds:.1f}s after SIGTERM"
        assert "abandoning the in-flight batch" in log.read_text()
    assert await recorded(settings) == set()  # the transaction was rolled back
    assert await committed_offsets(settings) == {}  # and no offset was committed

    proc = start_process("ledger", settings, log)
    try:
        await eventually(lambda: _at_least(settings, len(history)), seconds=60)
        await asyncio.sleep(0.5)  # anything more would be a duplicate
    finally:
        code, _ = stop(proc, within=30)
    assert code == 0
    assert await recorded(settings) == {e["event_id"] for e in history}


async def _append_waits(conn: asyncpg.Connection) -> bool:
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return bool(waiting)
