"""``python -m bench.load``: hold a steady input rate for minutes with every service running, and
report over time how long events take to become visible and how much memory each service holds.

The input is the benchmark's realistic mix (bench.workload); one event in ``PROBE_EVERY`` is a
probe instead: a receipt of one unit of a probe item that nothing else touches, so the k-th probe
of an item is visible when ``stock.levels.v1`` shows that item with ``on_hand >= k`` (published
after the read model commits, so the API shows it no later). Probes cycle over a fixed set of
items, so the number of items does not grow with the run's length and a growing RSS means a leak,
not more data. Every ``--interval`` seconds the run samples each service's RSS and the consumer
lags; after the input stops and the services have caught up, probe latencies are grouped by the
interval they were sent in. One table, and the same figures as JSON in
``bench/results/load-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from shared.settings import Settings
from shared.topics import LEVELS, SCANS

from .endtoend import LagProbe, Services, paced_send
from .processes import RESULTS, rss_bytes, stop_cleanly_on_sigterm, write_results
from .progress import Progress
from .scratch import scratch_stack
from .workload import input_messages

PROBE_EVERY = 10  # one probe among this many input events
PROBE_ITEMS = 500  # probe items, cycled
PROBE_LOCATION = "UK"
CATCH_UP_SECONDS = 120.0
MIB = 2**20


@dataclass
class Probes:
    """When each probe was sent and when it became visible, by (sku, ordinal)."""

    sent: dict[tuple[str, int], float] = field(default_factory=dict)
    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    visible: dict[str, int] = field(default_factory=dict)  # highest on_hand seen per probe sku

    def on_level(self, sku: str, on_hand: int, now: float) -> None:
        for k in range(self.visible.get(sku, 0) + 1, on_hand + 1):
            self.seen[(sku, k)] = now
        self.visible[sku] = max(self.visible.get(sku, 0), on_hand)


def probe_event(sku: str, now: float) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "scan.received",
            "schema_version": 1,
            "occurred_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "source": "bench.load",
            "data": {"sku": sku, "location": PROBE_LOCATION, "qty": 1},
        }
    )


def steady_messages(total: int, probes: Probes) -> Iterator[tuple[str, bytes, bytes]]:
    """The mix, one message in ``PROBE_EVERY`` a probe, stamped as it is drawn (just before it
    is sent)."""
    mix = input_messages(total, seed=7)
    tag = uuid.uuid4().hex[:6]
    counts: dict[str, int] = {}
    for n in range(total):
        if n % PROBE_EVERY:
            yield next(mix)
            continue
        sku = f"PROBE-{tag}-{n // PROBE_EVERY % PROBE_ITEMS:03d}"
        counts[sku] = counts.get(sku, 0) + 1
        now = time.time()
        probes.sent[(sku, counts[sku])] = now
        yield SCANS, f"{PROBE_LOCATION}|{sku}".encode(), probe_event(sku, now)


def produce_steady(
    settings: Settings, rate: int, seconds: float, probes: Probes, stop: threading.Event
) -> dict[str, float]:
    """The mix at ``rate`` events/s for ``seconds``, probes among it; runs in a thread."""
    total = int(rate * seconds)
    return paced_send(settings, rate, total, steady_messages(total, probes), stop)


async def collect_levels(settings: Settings, probes: Probes, ready: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + LEVELS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    ready.set()
    try:
        async for record in consumer:
            level = orjson.loads(record.value)
            if level["sku"].startswith("PROBE-"):
                probes.on_level(level["sku"], int(level["on_hand"]), time.time())
    finally:
        await consumer.stop()


def windows(
    probes: Probes, started: float, interval: float, samples: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Probe latencies grouped by the interval they were sent in, beside that interval's
    last sample of RSS and lag."""
    latencies: dict[int, list[float]] = {}
    unseen: dict[int, int] = {}
    for key, at in probes.sent.items():
        w = int((at - started) // interval)
        if key in probes.seen:
            latencies.setdefault(w, []).append((probes.seen[key] - at) * 1000)
        else:
            unseen[w] = unseen.get(w, 0) + 1
    rows = []
    for w, sample in enumerate(samples):
        values = sorted(latencies.get(w, []))
        q = statistics.quantiles(values, n=100) if len(values) >= 2 else [0.0] * 99
        rows.append(
            {
                "from_seconds": w * interval,
                "probes": len(values),
                "probes_not_seen": unseen.get(w, 0),
                "p50_ms": q[49],
                "p99_ms": q[98],
                "max_ms": values[-1] if values else 0.0,
                **sample,
            }
        )
    return rows


async def hold(
    settings: Settings, database_url: str, rate: int, minutes: float, interval: float
) -> dict[str, Any]:
    services = Services(settings, RESULTS, uuid.uuid4().hex[:8], replenisher=True)
    probes, stop, levels_ready = Probes(), threading.Event(), asyncio.Event()
    collector = asyncio.create_task(collect_levels(settings, probes, levels_ready))
    probe = await LagProbe(settings, database_url, replenisher=True).start()
    services.start()
    samples: list[dict[str, Any]] = []
    try:
        await services.ready()
        await levels_ready.wait()
        seconds = minutes * 60
        started = time.time()
        producing = asyncio.create_task(
            asyncio.to_thread(produce_steady, settings, rate, seconds, probes, stop)
        )
        with Progress(f"{rate:,} events/s", int(seconds)) as progress:
            while not producing.done():
                await asyncio.wait({producing}, timeout=interval)
                services.check()
                lags = await probe.sample()
                samples.append(
                    {
                        "at_seconds": time.time() - started,
                        "rss_mib": {
                            name: rss_bytes(s.proc.pid) / MIB
                            for name, s in services.all.items()
                            if s.proc is not None
                        },
                        "lag": {k: v for k, v in lags.items() if k not in ("inputs", "entries")},
                    }
                )
                progress.update(min(int(seconds), int(time.time() - started)))
        achieved = producing.result()
        caught_up = await _catch_up(probes, services)
    finally:
        stop.set()
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await probe.close()
        services.stop()
    rows = windows(probes, started, interval, samples)
    return {
        "rate": rate,
        "minutes": minutes,
        "interval_seconds": interval,
        "achieved": achieved,
        "caught_up_seconds": caught_up,
        "probes": len(probes.sent),
        "probes_seen": len(probes.seen),
        "peak_rss_mib": {name: peak / MIB for name, peak in services.peaks().items()},
        "windows": rows,
        "summary": summary(rows),
    }


async def _catch_up(probes: Probes, services: Services) -> float | None:
    """Seconds until every probe is visible after the input stopped; None if not in time."""
    began = time.perf_counter()
    while time.perf_counter() - began < CATCH_UP_SECONDS:
        services.check()
        if len(probes.seen) >= len(probes.sent):
            return time.perf_counter() - began
        await asyncio.sleep(0.2)
    return None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first and last thirds of the run side by side: bounded means the last is not worse."""
    if len(rows) < 3:
        return {}
    third = len(rows) // 3
    first, last = rows[:third], rows[-third:]

    def p99(part: list[dict[str, Any]]) -> float:
        return float(max(r["p99_ms"] for r in part))

    def rss(part: list[dict[str, Any]]) -> dict[str, float]:
        return {name: max(r["rss_mib"][name] for r in part) for name in part[0]["rss_mib"]}

    return {
        "p99_ms_first_third": p99(first),
        "p99_ms_last_third": p99(last),
        "rss_mib_first_third": rss(first),
        "rss_mib_last_third": rss(last),
    }


def show(report: dict[str, Any]) -> None:
    table = Table(
        title=f"steady {report['rate']:,} events/s for {report['minutes']:g} min: latency of"
        " probes (occurred_at to stock.levels.v1) and RSS per service"
    )
    for column in ("from", "probes", "p50 ms", "p99 ms", "max ms", "RSS MiB", "lag at end"):
        table.add_column(column, justify="right" if column != "RSS MiB" else "left")
    for row in report["windows"]:
        unseen = row["probes_not_seen"]
        table.add_row(
            f"{row['from_seconds']:,.0f} s",
            f"{row['probes']:,}" + (f" ({unseen:,} unseen)" if unseen else ""),
            f"{row['p50_ms']:,.0f}",
            f"{row['p99_ms']:,.0f}",
            f"{row['max_ms']:,.0f}",
            ", ".join(f"{n} {v:,.0f}" for n, v in row["rss_mib"].items()),
            ", ".join(f"{n} {v:,}" for n, v in row["lag"].items()),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))
    console.print(table)
    achieved = report["achieved"]
    console.print(
        f"sent {achieved['sent']:,} events at {achieved['per_second']:,.0f}/s;"
        f" {report['probes_seen']:,} of {report['probes']:,} probes seen;"
        + (
            f" caught up {caught_up:,.1f} s after the input stopped"
            if (caught_up := report["caught_up_seconds"]) is not None
            else f" NOT caught up within {CATCH_UP_SECONDS:g} s after the input stopped"
        )
    )
    s = report["summary"]
    if s:
        console.print(
            f"p99 first third {s['p99_ms_first_third']:,.0f} ms, last third"
            f" {s['p99_ms_last_third']:,.0f} ms; RSS MiB first third"
            f" {_mib(s['rss_mib_first_third'])}, last third {_mib(s['rss_mib_last_third'])}"
        )


def _mib(values: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:,.0f}" for n, v in values.items())


async def run(options: argparse.Namespace) -> dict[str, Any]:
    async with scratch_stack(Settings(), options.keep) as (settings, database_url, _):
        return await hold(settings, database_url, options.rate, options.minutes, options.interval)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--rate", type=int, default=1000, help="input events/s (1,000)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (10)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per row (30)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and topics")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.interval <= 0:
        parser.error("--rate, --minutes and --interval must be positive")
    return args


def main() -> None:
    stop_cleanly_on_sigterm()
    args = options()
    began = datetime.now(UTC)
    report = asyncio.run(run(args))
    show(report)
    report = {
        "started_at": began.isoformat(),
        "command": " ".join(["python -m bench.load", *sys.argv[1:]]),
        **report,
    }
    write_results(report, f"load-{began.strftime('%Y%m%dT%H%M%SZ')}")


if __name__ == "__main__":
    main()
