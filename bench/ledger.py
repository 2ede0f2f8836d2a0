"""Ledger ingest against its two physical limits: a bare consumer and a bare COPY."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import INPUT_TOPICS

from .processes import ServiceProcess
from .progress import Progress


async def raw_consume(settings: Settings, expected: int) -> dict[str, Any]:
    """A bare aiokafka consumer reading the same input topics, doing nothing: msgs/s."""
    consumer = AIOKafkaConsumer(
        *(settings.topic_prefix + t for t in INPUT_TOPICS),
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=settings.batch_max_records,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_records)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
    return {"messages": seen, "seconds": elapsed, "per_second": seen / elapsed}


async def raw_copy(database_url: str, rows_per_batch: int) -> dict[str, Any]:
    """The ledger's own rows written again with bare COPY into a table like the ledger's (the
    same columns and indexes, logged and in shared buffers as the ledger is), in batches of
    ``rows_per_batch`` (as many rows per transaction as the ledger wrote): the physical limit for
    these rows, in rows/s. Not a temporary table: its buffers (``temp_buffers``, 8 MB by default)
    spill long before a benchmark's rows are written, which slows it the more rows there are."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS copy_target")
        await conn.execute(
            "CREATE TABLE copy_target (LIKE ledger_entries INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        columns = await _columns(conn)
        rows = await conn.fetch(f"SELECT {', '.join(columns)} FROM ledger_entries")
        records = [tuple(r) for r in rows]
        started = time.perf_counter()
        for i in range(0, len(records), rows_per_batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "copy_target", records=records[i : i + rows_per_batch], columns=columns
                )
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE copy_target")
    finally:
        await conn.close()
    return {
        "rows": len(records),
        "rows_per_batch": rows_per_batch,
        "seconds": elapsed,
        "per_second": len(records) / elapsed,
    }


def rows_per_batch(ingest: dict[str, Any], batch_max_records: int) -> int:
    """The ledger's entries per transaction in an ingest run: its entries over its batches."""
    events, entries = int(ingest["events"]), int(ingest["entries"])
    batches = max(1, -(-events // batch_max_records))
    return max(1, round(entries / batches))


async def _columns(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger_entries'"
        " ORDER BY ordinal_position"
    )
    return [r[0] for r in rows]


async def ledger_ingest(
    ledger: ServiceProcess, relay: ServiceProcess, database_url: str, expected: int
) -> dict[str, Any]:
    """The ledger service and its relay, each as its own process, ingesting the pre-produced
    input: events/s from the first to the last committed batch. Returns once the relay has
    published everything too (both keep running)."""
    conn = await asyncpg.connect(database_url)
    relay.start()
    ledger.start()
    try:
        with Progress("ledger ingest", expected) as progress:
            done = 0
            while done < expected:
                ledger.check()
                relay.check()
                await asyncio.sleep(0.2)
                done = await conn.fetchval("SELECT count(*) FROM processed_events")
                progress.update(done)
        row = await conn.fetchrow(
            "SELECT min(processed_at), max(processed_at), (SELECT count(*) FROM ledger_entries)"
            " FROM processed_events"
        )
        assert row is not None
        first, last, entries = row
        first_batch = await conn.fetchval(
            "SELECT count(*) FROM processed_events WHERE processed_at <="
            " (SELECT min(processed_at) FROM processed_events) + interval '1 millisecond'"
        )
        head = await conn.fetchval("SELECT max(position) FROM ledger_entries")
        while (await conn.fetchval("SELECT max(position) FROM relay_positions") or 0) < head:
            ledger.check()
            relay.check()
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    seconds = (last - first).total_seconds()
    share = (expected - first_batch) / expected  # the first batch's commit starts the clock
    return {
        "events": expected,
        "entries": entries,
        "seconds": seconds,
        "per_second": expected * share / seconds if seconds else 0.0,
        "entries_per_second": entries * share / seconds if seconds else 0.0,
    }
