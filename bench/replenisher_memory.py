"""``python -m bench.replenisher_memory``: the live replenisher's peak memory and CPU per entry,
catching up with a backlog of ledger entries.

The backlog is a copy of a ledger topic (``--source``: by default the local stack's
``stock.ledger.v1``, which holds the order history's entries after ``make demo``) in topics of
its own (``--backlog``, a topic prefix, kept between runs so that runs read the same entries;
copied when it does not exist yet). Each run starts ``python -m services.replenisher`` as the
stack does (default settings), on a scratch database and a consumer group of its own, and
samples its ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``) and its CPU, and that of its
PostgreSQL backends, until it has committed every entry. Reported: the peak RSS, the RSS at the
end, and CPU ms per 1,000 entries of the process and of its backends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import LEDGER, create_topics

from .cpu import CpuSampler, cpu_in_window
from .processes import (
    ROOT,
    ServiceProcess,
    free_port,
    status_kib,
    stop_cleanly_on_sigterm,
    write_results,
)
from .scratch import drop_database, scratch_database

PARTITIONS = 6


async def ends(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        found: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return found
    finally:
        await consumer.stop()


async def copy_backlog(settings: Settings, source: str, prefix: str, limit: int | None) -> int:
    """Copy ``source`` partition by partition (keys and values as they are) into ``prefix``'s
    ledger topic, unless it holds entries already; returns the entries it holds."""
    client = client_options(settings)
    await create_topics(client.pop("bootstrap_servers"), prefix, **client)
    target = prefix + LEDGER
    held = sum((await ends(settings, target)).values())
    if held:
        return held
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        last = {tp: end for tp, end in (await ends(settings, source)).items() if end}
        if limit is not None:  # the first entries of each partition, ``limit`` in all
            total = sum(last.values())
            last = {tp: min(end, end * limit // total + 1) for tp, end in last.items()}
        consumer.assign(list(last))
        await consumer.seek_to_beginning(*last)
        left = dict(last)
        while left:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            futures = []
            for tp, records in batch.items():
                for r in records:
                    if tp in left and r.offset < last[tp]:
                        futures.append(
                            await producer.send(target, r.value, key=r.key, partition=tp.partition)
                        )
                if records and records[-1].offset + 1 >= last[tp]:
                    left.pop(tp, None)
                    consumer.pause(tp)
            await asyncio.gather(*futures)
            copied += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()
    return copied


async def committed(settings: Settings, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return sum(max(0, o.offset) for o in offsets.values())
    finally:
        await admin.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    base = Settings()
    entries = await copy_backlog(base, args.source, args.backlog, args.limit)
    tag = uuid.uuid4().hex[:8]
    name = f"bench_replmem_{tag}"
    url = await scratch_database(base, name)
    settings = base.model_copy(
        update={
            "database_url": base.database_url.__class__(url),
            "topic_prefix": args.backlog,
            "consumer_group_prefix": f"{args.backlog}replmem{tag}",
        }
    )
    port = free_port()
    log = ROOT / "bench" / "results" / f"replenisher-memory-{tag}.log"
    log.parent.mkdir(exist_ok=True)
    service = ServiceProcess(
        args.module,
        settings,
        log,
        STOCKLEDGER_METRICS_PORT=str(port),
        STOCKLEDGER_LOG_LEVEL="INFO",
    )
    timeline: list[tuple[float, int, int, int]] = []
    try:
        service.start()
        await service.wait_ready(port)
        assert service.proc is not None
        pid = service.proc.pid
        sampler = await CpuSampler({"replenisher": pid}, base.kafka_bootstrap_servers, url).start()
        group = f"{settings.consumer_group_prefix}.replenisher"
        started = time.monotonic()
        samples = [await sampler.sample()]
        done = 0
        next_check = 0.0
        while done < entries:
            service.check()
            figures = status_kib(pid)
            now = time.monotonic() - started
            if now >= next_check:
                done = await committed(settings, group, args.backlog + LEDGER)
                samples.append(await sampler.sample())
                next_check = now + 1.0
            timeline.append((round(now, 2), figures["VmHWM"], figures["VmRSS"], done))
            if now > args.timeout:
                raise TimeoutError(f"{done:,} of {entries:,} entries after {args.timeout} s")
            await asyncio.sleep(args.every)
        seconds = time.monotonic() - started
        cpu = cpu_in_window(samples, 0, len(samples) - 1)
        await sampler.close()
        end = status_kib(pid)
    finally:
        service.stop()
        await drop_database(base, name)
    process_cpu = cpu.get("replenisher", 0.0)
    backend_cpu = cpu.get("replenisher (postgresql)", 0.0)
    return {
        "entries": entries,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(end["VmHWM"] / 1024, 1),
        "end_rss_mb": round(end["VmRSS"] / 1024, 1),
        "cpu_ms_per_1000": round(process_cpu * 1e6 / entries, 1),
        "backend_cpu_ms_per_1000": round(backend_cpu * 1e6 / entries, 1),
        "log": str(log),
        "timeline": timeline[:: max(1, len(timeline) // 400)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replenisher_memory", description=__doc__)
    parser.add_argument("--source", default=LEDGER, help="the ledger topic to copy the backlog of")
    parser.add_argument(
        "--backlog", default="replmem.", help="topic prefix of the backlog (copied once, kept)"
    )
    parser.add_argument("--limit", type=int, default=None, help="copy about this many entries")
    parser.add_argument("--every", type=float, default=0.05, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--module", default="services.replenisher", help="the module to run as the replenisher"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    result = asyncio.run(run(args))
    print(
        f"{result['entries']:,} entries in {result['seconds']} s: peak RSS (VmHWM)"
        f" {result['peak_rss_mb']} MB, RSS at the end {result['end_rss_mb']} MB;"
        f" CPU {result['cpu_ms_per_1000']} ms per 1,000 entries"
        f" (+ {result['backend_cpu_ms_per_1000']} ms in its PostgreSQL backends)"
    )
    write_results(result, f"replenisher-memory-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
