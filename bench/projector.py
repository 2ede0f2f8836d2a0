"""Projector figures: apply rate, rebuild rate, and latency from an event to its visible level."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.projector.rebuild import rebuild
from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import LEVELS, SCANS

from .processes import ServiceProcess
from .progress import Progress


async def _applied(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("stockledger_projector_entries_applied_total "):
            return float(line.split()[1])
    return 0.0


async def projector_apply(
    projector: ServiceProcess, settings: Settings, entries: int
) -> dict[str, Any]:
    """The projector, as its own process, applying every ledger entry from stock.ledger.v1."""
    projector.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client:
        while True:
            projector.check()
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        first = last = None
        with Progress("projector apply", entries) as progress:
            done = 0.0
            while done < entries:
                projector.check()
                await asyncio.sleep(0.1)
                done = await _applied(client)
                if done and first is None:
                    first = (time.perf_counter(), done)
                progress.update(int(done))
            last = time.perf_counter()
    assert first is not None
    seconds = last - first[0]
    return {
        "entries": entries,
        "seconds": seconds,
        "per_second": (entries - first[1]) / seconds if seconds else 0.0,
    }


async def event_to_visible(settings: Settings, rate: int, seconds: float) -> dict[str, Any]:
    """Receipts of new items produced at a steady rate; for each, the time from its occurred_at
    to its level on stock.levels.v1 (published after the read model commits, so the API shows
    it no later)."""
    levels = AIOKafkaConsumer(
        settings.topic_prefix + LEVELS,
        **client_options(settings),
        auto_offset_reset="latest",
    )
    await levels.start()
    await asyncio.sleep(1)  # the consumer's partitions positioned at the end
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True, linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}

    async def collect() -> None:
        async for record in levels:
            level = orjson.loads(record.value)
            if level["sku"] in sent and level["sku"] not in seen:
                seen[level["sku"]] = time.time()

    collector = asyncio.create_task(collect())
    total = int(rate * seconds)
    tag = uuid.uuid4().hex[:6]
    try:
        with Progress(f"latency at {rate}/s", total) as progress:
            started = time.perf_counter()
            for n in range(total):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sku = f"LAT-{tag}-{n}"
                now = time.time()
                event = {
                    "event_id": str(uuid.uuid4()),
                    "type": "scan.received",
                    "schema_version": 1,
                    "occurred_at": datetime.fromtimestamp(now, UTC)
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "data": {"sku": sku, "location": "UK", "qty": 1},
                }
                sent[sku] = now
                await producer.send(
                    settings.topic_prefix + SCANS, orjson.dumps(event), key=f"UK|{sku}".encode()
                )
                if n % 500 == 0:
                    progress.update(n)
            async with asyncio.timeout(60):
                while len(seen) < total:
                    await asyncio.sleep(0.1)
    finally:
        collector.cancel()
        await producer.stop()
        await levels.stop()
    latencies = sorted(seen[s] - sent[s] for s in seen)
    q = statistics.quantiles(latencies, n=100)
    return {
        "rate": rate,
        "events": total,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


async def rebuild_rate(database_url: str) -> dict[str, Any]:
    entries = await _count(database_url)
    with Progress("rebuild", entries) as progress:
        result = await rebuild(database_url, progress=lambda done, _: progress.update(done))
    return {
        "entries": result.entries,
        "items": result.items,
        "seconds": result.seconds,
        "per_second": result.entries_per_second,
    }


async def _count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger_entries"))
    finally:
        await conn.close()
