"""``python -m bench``: run the benchmarks against the local stack, print one table, write JSON.

Every figure that matters is a ratio to a limit measured in the same run on the same machine
(../shared/docs/performance.md): the ledger's ingest rate over a bare COPY of the same rows, and
over a bare consumer of the same topics; the end-to-end rate it sustains, and the real order
history replayed end to end; and the same workload through the ``eventsourcing`` library, the
peer. Each part gets its own scratch database and topics.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from shared.kafka import client_options
from shared.settings import Settings

from .cpu import in_suite_total, spread
from .endtoend import CpuRun, retail_replay, sustained
from .ledger import ledger_ingest, raw_consume, raw_copy, rows_per_batch
from .peer import run_peer
from .processes import RESULTS, ServiceProcess, stop_cleanly_on_sigterm, write_results
from .progress import Progress
from .projector import event_to_visible, projector_apply, rebuild_rate
from .scratch import drop_database, scratch_database, scratch_stack
from .workload import input_messages


async def produce(settings: Settings, count: int) -> None:
    producer = AIOKafkaProducer(
        **client_options(settings),
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


async def run(options: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    results = await run_services(base, options)
    async with scratch_stack(base, options.keep) as (settings, database_url, tag):
        sustain, logs = await sustained(
            settings,
            database_url,
            options.rates,
            options.sustain_seconds,
            options.replenisher,
            RESULTS,
            f"sustain-{tag}",
            options.refine,
            CpuRun(
                options.cpu_rate,
                options.cpu_seconds,
                options.cpu_windows,
                options.cpu_warm_up,
                options.cpu_idle,
            ),
        )
    forget(logs, options.keep)
    async with scratch_stack(base, options.keep) as (settings, database_url, tag):
        replay, logs = await retail_replay(
            settings,
            database_url,
            options.retail_rows,
            options.replenisher,
            RESULTS,
            f"retail-{tag}",
        )
    forget(logs, options.keep)
    peer_db = f"bench_{uuid.uuid4().hex[:8]}_peer"
    peer_url = await scratch_database(base, peer_db, migrated=False)
    try:
        usual, batched = options.peer_events, options.peer_batched_events
        messages = list(input_messages(max(usual, batched)))
        peer = await asyncio.to_thread(run_peer, peer_url, messages[:usual], messages[:batched])
    finally:
        if not options.keep:
            await drop_database(base, peer_db)
    ingest = results["ledger_ingest"]["per_second"]
    results["end_to_end_sustained"] = sustain
    results["retail_replay"] = replay
    results["peer"] = peer
    results["ratios"].update(
        {
            "sustained_over_ledger_ingest": sustain["held_rate"] / ingest,
            "ledger_ingest_over_peer_usual": ingest / peer["usual"]["per_second"],
            "ledger_ingest_over_peer_batched": ingest / peer["batched"]["per_second"],
        }
    )
    if "per_second" in replay:
        results["ratios"]["retail_replay_over_ledger_ingest"] = replay["per_second"] / ingest
    return results


def forget(logs: list[Path], keep: bool) -> None:
    """The services' logs of a part that went well are not kept (unless --keep)."""
    if not keep:
        for log in logs:
            log.unlink(missing_ok=True)


async def run_services(base: Settings, options: argparse.Namespace) -> dict[str, Any]:
    """Each service alone against its limits, latency at a steady rate, the rebuild."""
    events, keep = options.events, options.keep
    async with scratch_stack(base, keep) as (settings, database_url, tag):
        return await _run_services(
            settings, database_url, tag, events, options.latency_seconds, options.latency_runs, keep
        )


async def _run_services(
    settings: Settings,
    database_url: str,
    tag: str,
    events: int,
    latency_seconds: float,
    latency_runs: int,
    keep: bool,
) -> dict[str, Any]:
    ledger = ServiceProcess(
        "services.ledger",
        settings,
        RESULTS / f"ledger-{tag}.log",
        STOCKLEDGER_LEDGER_RELAY="false",  # as the local stack runs it: the relay apart
    )
    relay = ServiceProcess("services.ledger.relay", settings, RESULTS / f"relay-{tag}.log")
    projector = ServiceProcess(
        "services.projector",
        settings,
        RESULTS / f"projector-{tag}.log",
        STOCKLEDGER_HTTP_PORT=str(settings.http_port),
    )
    try:
        await produce(settings, events)
        consume = await raw_consume(settings, events)
        ingest = await ledger_ingest(ledger, relay, database_url, events)
        apply = await projector_apply(projector, settings, ingest["entries"])
        latency = repeated_latency(
            [await event_to_visible(settings, 1000, latency_seconds) for _ in range(latency_runs)]
        )
        ledger.stop()
        relay.stop()
        projector.stop()
        copy = await raw_copy(database_url, rows_per_batch(ingest, settings.batch_max_records))
        rebuilt = await rebuild_rate(database_url)
    finally:
        ledger.stop()
        relay.stop()
        projector.stop()
    forget([ledger.log, relay.log, projector.log], keep)
    ingest["peak_rss_bytes"] = ledger.peak_rss
    ingest["relay_peak_rss_bytes"] = relay.peak_rss
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


def repeated_latency(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of event_to_visible at one rate: the median run's p50 and p99, each run's figures,
    and the spread of p99 and p50 over the runs."""
    p50s, p99s = [r["p50_ms"] for r in runs], [r["p99_ms"] for r in runs]
    return {
        "rate": runs[0]["rate"],
        "events": runs[0]["events"],
        "runs": runs,
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "p50_ms_spread": spread(p50s),
        "p99_ms_spread": spread(p99s),
    }


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
    table.add_row(
        "  peak RSS",
        f"{ingest['peak_rss_bytes'] / mib:,.0f} MiB",
        f"relay apart: {ingest['relay_peak_rss_bytes'] / mib:,.0f} MiB",
    )
    table.add_row(
        "projector apply",
        f"{apply['per_second']:,.0f} entries/s",
        f"{r['projector_apply_over_raw_consume']:.3f} of raw consume",
    )
    table.add_row("  peak RSS", f"{apply['peak_rss_bytes'] / mib:,.0f} MiB", "")
    p99 = latency["p99_ms_spread"]
    table.add_row(
        f"event to visible at {latency['rate']:,}/s",
        f"p50 {latency['p50_ms']:,.0f} ms, p99 {latency['p99_ms']:,.0f} ms",
        f"{len(latency['runs'])} runs of {latency['events']:,} events;"
        f" p99 {p99['min']:,.0f} to {p99['max']:,.0f} ms",
    )
    table.add_row(
        "rebuild",
        f"{rebuilt['per_second']:,.0f} entries/s",
        f"{rebuilt['entries']:,} entries, {rebuilt['items']:,} items",
    )
    _end_to_end_rows(table, results)
    table.add_row("limit: raw consume", f"{consume['per_second']:,.0f} msgs/s", "bare aiokafka")
    table.add_row(
        "limit: raw COPY",
        f"{copy['per_second']:,.0f} rows/s",
        f"{copy['rows']:,} ledger rows, {copy['rows_per_batch']:,} a batch",
    )
    _peer_rows(table, results)
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that rows do not wrap
        console = Console(width=max(console.width, 120))
    console.print(table)


def _mib(peaks: dict[str, int]) -> str:
    return ", ".join(f"{name} {peak / 2**20:,.0f}" for name, peak in peaks.items()) + " MiB"


def _end_to_end_rows(table: Table, results: dict[str, Any]) -> None:
    sustain, replay, r = (
        results["end_to_end_sustained"],
        results["retail_replay"],
        results["ratios"],
    )
    window = f"{sustain['seconds_per_rate']:g} s"
    if sustain["held_rate"]:
        table.add_row(
            "end to end, sustained",
            f"{sustain['held_rate']:,} events/s for {window}",
            f"{r['sustained_over_ledger_ingest']:.2f} of ledger ingest",
        )
        table.add_row("  peak RSS at that rate", _mib(sustain["peak_rss_bytes"]), "")
    else:
        first = sustain["steps"][0]["rate"] if sustain["steps"] else 0
        table.add_row("end to end, sustained", f"below {first:,} events/s", f"{window} windows")
    tried = sustain["steps"]
    table.add_row(
        "  rates tried, events/s",
        "held " + (", ".join(f"{s['rate']:,}" for s in tried if s["held"]) or "none"),
        "not held " + (", ".join(f"{s['rate']:,}" for s in tried if not s["held"]) or "none"),
    )
    if "cpu" in sustain:
        _cpu_rows(table, sustain["cpu"])
    planning = sustain.get("planning_pass")
    if planning and planning["items"]:
        table.add_row(
            "  a planning pass, read apart",
            f"{planning['cpu_seconds_per_1000_items']:,.2f} s of CPU per 1,000 items",
            f"{planning['items']:,} items: {planning['cpu_seconds']:,.1f} s, its backend"
            f" {planning['backend_cpu_seconds']:,.1f} s",
        )
    failed = sustain["lowest_not_held"]
    if failed is not None:
        table.add_row(
            f"  not held: {failed['rate']:,}/s",
            f"{failed['achieved_per_second']:,.0f} events/s sent",
            failed["why_not"] or "",
        )
    else:
        table.add_row("  not held", "every rate tried was held", "")
    if "skipped" in replay:
        table.add_row("real history replay", "skipped", replay["skipped"])
        return
    table.add_row(
        "real history replay",
        f"{replay['events']:,} events in {replay['wall_seconds']:,.1f} s",
        f"{replay['per_second']:,.0f} events/s, {r['retail_replay_over_ledger_ingest']:.2f}"
        " of ledger ingest",
    )
    table.add_row(
        "  ledger done, entries",
        f"{replay['ledger_seconds']:,.1f} s, {replay['entries']:,} entries",
        f"{replay['rows']:,} rows read, {replay['rejected']:,} rejected",
    )
    table.add_row("  peak RSS", _mib(replay["peak_rss_bytes"]), "")


def _cpu_rows(table: Table, cpu: dict[str, Any]) -> None:
    """CPU ms per 1,000 events: the suite's total, then each process, heaviest first."""

    def figure(s: dict[str, float]) -> str:
        return f"{s['mean']:,.1f} ms ({s['min']:,.1f} to {s['max']:,.1f})"

    total, windows = cpu["total"], cpu["windows"]
    rate = sum(w["events_per_second"] for w in windows) / len(windows)
    saturation = "below saturation" if cpu["below_saturation"] else "a lag grew: saturated"
    table.add_row(
        f"CPU per 1,000 events at {cpu['rate']:,}/s",
        figure(total),
        f"{len(windows)} windows of {cpu['seconds'] / len(windows):g} s, {rate:,.0f} events/s;"
        f" {saturation}",
    )
    above = cpu["above_idle"]["by_process"]
    table.add_row(
        "  above what they spend at rest",
        figure(cpu["above_idle"]["total"]),
        f"at rest, read for {cpu['idle_seconds']:g} s before the input",
    )
    by_process = sorted(cpu["by_process"].items(), key=lambda kv: -kv[1]["mean"])
    for name, figures in by_process:
        note = f"above rest {above[name]['mean']:,.1f} ms"
        if not in_suite_total(name):
            note += "; not in the total"
        table.add_row(f"  {name}", figure(figures), note)


def _peer_rows(table: Table, results: dict[str, Any]) -> None:
    peer, r = results["peer"], results["ratios"]
    usual, batched = peer["usual"], peer["batched"]
    table.add_row(
        "peer: load, apply, save",
        f"{usual['per_second']:,.0f} events/s",
        f"ledger ingest {r['ledger_ingest_over_peer_usual']:,.1f}×; {usual['events']:,} events",
    )
    table.add_row(
        f"peer: {peer['aggregates_per_save']} aggregates per save",
        f"{batched['per_second']:,.0f} events/s",
        f"ledger ingest {r['ledger_ingest_over_peer_batched']:,.1f}×; {batched['events']:,} events",
    )
    table.add_row(
        "  aggregate events",
        f"{usual['aggregate_events_per_second']:,.0f}"
        f" / {batched['aggregate_events_per_second']:,.0f} per s",
        peer["library"] + " on PostgreSQL",
    )


RATES = (2_000, 4_000, 8_000, 12_000, 16_000, 20_000, 24_000, 32_000)


def _rates(text: str) -> tuple[int, ...]:
    rates = tuple(int(r.replace("_", "")) for r in text.split(",") if r.strip())
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("a comma-separated list of positive rates")
    return rates


def options(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument(
        "--sustain-seconds",
        type=float,
        default=60.0,
        help="how long each rate of the end-to-end run is held (60)",
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=RATES,
        help="the end-to-end input rates tried in turn, events/s "
        f"({','.join(str(r) for r in RATES)})",
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=3,
        help="how many times the latency run is repeated, for its spread (3)",
    )
    parser.add_argument(
        "--cpu-rate",
        type=int,
        default=5_000,
        help="the steady end-to-end rate at which CPU per 1,000 events is read, events/s (5,000)",
    )
    parser.add_argument(
        "--cpu-seconds",
        type=float,
        default=60.0,
        help="how long CPU is read at that rate, after the warm-up; 0 skips it (60)",
    )
    parser.add_argument(
        "--cpu-windows",
        type=int,
        default=3,
        help="the CPU reading is split into this many windows, for its spread (3)",
    )
    parser.add_argument(
        "--cpu-warm-up",
        type=float,
        default=10.0,
        help="seconds at the CPU rate before the reading starts (10)",
    )
    parser.add_argument(
        "--cpu-idle",
        type=float,
        default=10.0,
        help="seconds the processes are read at rest, before the input starts (10)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=2,
        help="rates tried halfway between the highest held and the lowest not held (2)",
    )
    parser.add_argument(
        "--no-replenisher",
        dest="replenisher",
        action="store_false",
        help="leave the replenisher out of the end-to-end runs",
    )
    parser.add_argument(
        "--peer-events",
        type=int,
        default=2_000,
        help="input events through the peer used the usual way (2,000)",
    )
    parser.add_argument(
        "--peer-batched-events",
        type=int,
        default=None,
        help="input events through the peer in batches (as many as --events)",
    )
    parser.add_argument(
        "--retail-rows",
        type=int,
        default=None,
        help="replay only the first rows of the order history (all)",
    )
    args = parser.parse_args(argv)
    if args.cpu_windows < 1 or args.latency_runs < 1:
        parser.error("--cpu-windows and --latency-runs take 1 or more")
    if args.smoke:
        args.events = 3_000
        args.latency_seconds = 3.0
        args.latency_runs = min(args.latency_runs, 2)
        args.cpu_rate = min(args.cpu_rate, 1_000)
        args.cpu_seconds = min(args.cpu_seconds, 3.0)
        args.cpu_warm_up = min(args.cpu_warm_up, 1.0)
        args.cpu_idle = min(args.cpu_idle, 1.0)
        args.sustain_seconds = min(args.sustain_seconds, 3.0)
        args.rates = args.rates if "--rates" in (argv or sys.argv) else (1_000, 2_000)
        args.refine = 0
        args.peer_events = min(args.peer_events, 300)
        args.peer_batched_events = min(args.peer_batched_events or 600, 600)
        args.retail_rows = args.retail_rows or 3_000
    args.peer_events = min(args.peer_events, args.events)
    args.peer_batched_events = args.peer_batched_events or args.events
    return args


def main() -> None:
    stop_cleanly_on_sigterm()
    args = options()
    events = args.events
    started = time.time()
    results = asyncio.run(run(args))
    show(results, events)
    report = {
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "events": events,
        "sizes": {
            "events": events,
            "latency_seconds": args.latency_seconds,
            "latency_runs": args.latency_runs,
            "cpu_rate": args.cpu_rate,
            "cpu_seconds": args.cpu_seconds,
            "cpu_windows": args.cpu_windows,
            "cpu_warm_up": args.cpu_warm_up,
            "cpu_idle": args.cpu_idle,
            "sustain_seconds": args.sustain_seconds,
            "rates": list(args.rates),
            "refine": args.refine,
            "replenisher": args.replenisher,
            "peer_events_usual": args.peer_events,
            "peer_events_batched": args.peer_batched_events,
            "retail_rows": args.retail_rows,
        },
        "machine": machine(),
        **results,
    }
    write_results(report, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))


if __name__ == "__main__":
    main()
