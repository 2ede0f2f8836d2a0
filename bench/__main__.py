"""``python -m bench``: run the benchmarks against the local stack, print one table, write JSON.

Every figure that matters is a ratio to a limit measured in the same run on the same machine
(../shared/docs/performance.md): the ledger's ingest rate over a bare COPY of the same rows, and
over a bare consumer of the same topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from shared.migrate import migrate
from shared.settings import Settings
from shared.topics import create_topics, topic_specs

from .ledger import ledger_ingest, raw_consume, raw_copy
from .processes import ServiceProcess
from .progress import Progress
from .projector import event_to_visible, projector_apply, rebuild_rate
from .workload import input_messages

RESULTS = Path(__file__).resolve().parent / "results"


async def produce(settings: Settings, count: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        linger_ms=20,
        enable_idempotence=True,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        with Progress("producing input", count) as progress:
            pending = []
            for n, (topic, key, value) in enumerate(input_messages(count), 1):
                pending.append(await producer.send(settings.topic_prefix + topic, value, key=key))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(n)
            await asyncio.gather(*pending)
            progress.update(count)
    finally:
        await producer.stop()


async def scratch_database(base: Settings, name: str) -> str:
    url = base.database_url.get_secret_value()
    admin = await asyncpg.connect(url.rpartition("/")[0] + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    scratch = url.rpartition("/")[0] + "/" + name
    await migrate(scratch)
    return scratch


async def drop_scratch(base: Settings, name: str, prefix: str) -> None:
    url = base.database_url.get_secret_value()
    admin = await asyncpg.connect(url.rpartition("/")[0] + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
    kafka = AIOKafkaAdminClient(bootstrap_servers=base.kafka_bootstrap_servers)
    await kafka.start()
    try:
        await kafka.delete_topics([s.name for s in topic_specs(prefix)])
    finally:
        await kafka.close()


async def run(events: int, keep: bool, latency_seconds: float) -> dict[str, Any]:
    base = Settings()
    tag = uuid.uuid4().hex[:8]
    name, prefix = f"bench_{tag}", f"bench{tag}."
    database_url = await scratch_database(base, name)
    settings = base.model_copy(
        update={
            "database_url": base.database_url.__class__(database_url),
            "topic_prefix": prefix,
            "consumer_group_prefix": f"{prefix}stockledger",
            "http_port": free_port(),
        }
    )
    await create_topics(settings.kafka_bootstrap_servers, prefix)
    ledger = ServiceProcess("services.ledger", settings, RESULTS / f"ledger-{tag}.log")
    projector = ServiceProcess(
        "services.projector",
        settings,
        RESULTS / f"projector-{tag}.log",
        STOCKLEDGER_HTTP_PORT=str(settings.http_port),
    )
    try:
        await produce(settings, events)
        consume = await raw_consume(settings, events)
        ingest = await ledger_ingest(ledger, database_url, events)
        apply = await projector_apply(projector, settings, ingest["entries"])
        latency = await event_to_visible(settings, 1000, latency_seconds)
        ledger.stop()
        projector.stop()
        copy = await raw_copy(database_url)
        rebuilt = await rebuild_rate(database_url)
    finally:
        ledger.stop()
        projector.stop()
        if not keep:
            await drop_scratch(base, name, prefix)
    if not keep:
        ledger.log.unlink(missing_ok=True)
        projector.log.unlink(missing_ok=True)
    ingest["peak_rss_bytes"] = ledger.peak_rss
    apply["peak_rss_bytes"] = projector.peak_rss
    return {
        "ledger_ingest": ingest,
        "projector_apply": apply,
        "event_to_visible": latency,
        "rebuild": rebuilt,
        "limit_raw_consume": consume,
        "limit_raw_copy": copy,
        "ratios": {
            # the same rows: ledger entries appended per second over COPY rows per second
            "ledger_ingest_over_raw_copy": ingest["entries_per_second"] / copy["per_second"],
            "ledger_ingest_over_raw_consume": ingest["per_second"] / consume["per_second"],
            "projector_apply_over_raw_consume": apply["per_second"] / consume["per_second"],
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def show(results: dict[str, Any], events: int) -> None:
    table = Table(title=f"stockledger benchmarks ({events:,} input events, {os.cpu_count()} cores)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("ratio to its limit", justify="right")
    ingest, apply = results["ledger_ingest"], results["projector_apply"]
    copy, consume = results["limit_raw_copy"], results["limit_raw_consume"]
    latency, rebuilt, r = results["event_to_visible"], results["rebuild"], results["ratios"]
    mib = 2**20
    table.add_row(
        "ledger ingest",
        f"{ingest['per_second']:,.0f} events/s",
        f"{r['ledger_ingest_over_raw_consume']:.3f} of raw consume",
    )
    table.add_row(
        "  entries appended",
        f"{ingest['entries_per_second']:,.0f} entries/s",
        f"{r['ledger_ingest_over_raw_copy']:.2f} of raw COPY",
    )
    table.add_row("  peak RSS", f"{ingest['peak_rss_bytes'] / mib:,.0f} MiB", "")
    table.add_row(
        "projector apply",
        f"{apply['per_second']:,.0f} entries/s",
        f"{r['projector_apply_over_raw_consume']:.3f} of raw consume",
    )
    table.add_row("  peak RSS", f"{apply['peak_rss_bytes'] / mib:,.0f} MiB", "")
    table.add_row(
        f"event to visible at {latency['rate']:,}/s",
        f"p50 {latency['p50_ms']:,.0f} ms, p99 {latency['p99_ms']:,.0f} ms",
        f"{latency['events']:,} events",
    )
    table.add_row(
        "rebuild",
        f"{rebuilt['per_second']:,.0f} entries/s",
        f"{rebuilt['entries']:,} entries, {rebuilt['items']:,} items",
    )
    table.add_row("limit: raw consume", f"{consume['per_second']:,.0f} msgs/s", "bare aiokafka")
    table.add_row(
        "limit: raw COPY",
        f"{copy['per_second']:,.0f} rows/s",
        f"{copy['rows']:,} ledger rows, same indexes",
    )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="input events (200,000)")
    parser.add_argument("--smoke", action="store_true", help="a small run that checks it works")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and topics")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=20.0,
        help="how long the steady 1,000 events/s latency run lasts (20)",
    )
    args = parser.parse_args()
    events = 3_000 if args.smoke else args.events
    started = time.time()
    results = asyncio.run(run(events, args.keep, 3.0 if args.smoke else args.latency_seconds))
    show(results, events)
    report = {
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "command": "make bench" if not args.smoke else "python -m bench --smoke",
        "events": events,
        "machine": machine(),
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
