"""``python -m bench.planning``: one planning pass of the ``lines`` policy at scale, in the
replenisher's own process, and what it costs: peak memory (RSS), CPU and seconds.

A scratch database gets a synthetic order history of ``--items`` items over ``--days`` days
(long-tailed: item rates lognormal around ``--lines-per-item-day`` lines a day, the shipped
history's mean; sizes from a few packs; items appearing over the first half of the span), written
with COPY a few thousand items at a time. Then the replenisher's ``forecast`` command plans
every item as of the last day, as the service does once a week in event time, in a process of
its own that reports its peak RSS and CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from shared.settings import Settings

from .scratch import drop_database, scratch_database

START = date(2010, 12, 1)
SIZES = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24, 25, 36, 48, 72, 96, 144, 288])
LOCATIONS = ("UK", "EU", "ROW")
CHUNK_ITEMS = 5_000


def history_rows(
    first: int, count: int, days: int, mean_rate: float, rng: np.random.Generator
) -> list[tuple[str, str, date, int, int]]:
    """Rows of ``demand_lines`` (sku, location, day, qty, lines) for items ``first`` … ``first
    + count − 1``."""
    rates = rng.lognormal(0.0, 1.2, count)
    rates *= mean_rate / np.exp(1.2**2 / 2)  # the lognormal's mean is exp(σ²/2)
    starts = rng.integers(0, days // 2, count)
    lines = rng.poisson(rates * (days - starts))
    item = np.repeat(np.arange(count), lines)
    day = starts[item] + (rng.random(len(item)) * (days - starts[item])).astype(np.int64)
    # each item asks a few sizes: its usual pack and, less often, larger ones
    usual = rng.integers(0, 10, count)
    size_index = np.minimum(usual[item] + rng.geometric(0.6, len(item)) - 1, len(SIZES) - 1)
    keys = (item * days + day) * len(SIZES) + size_index
    unique, counts = np.unique(keys, return_counts=True)
    out = []
    for key, n in zip(unique.tolist(), counts.tolist(), strict=True):
        rest, s = divmod(key, len(SIZES))
        i, d = divmod(rest, days)
        n_item = first + i
        out.append(
            (
                f"P{n_item // len(LOCATIONS):06d}",
                LOCATIONS[n_item % len(LOCATIONS)],
                START + timedelta(days=d),
                int(SIZES[s]),
                n,
            )
        )
    return out


async def fill(url: str, items: int, days: int, mean_rate: float, console: Console) -> int:
    rng = np.random.default_rng(1)
    conn = await asyncpg.connect(url)
    written = 0
    try:
        with Progress(
            "history", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("items", total=items)
            for first in range(0, items, CHUNK_ITEMS):
                count = min(CHUNK_ITEMS, items - first)
                rows = history_rows(first, count, days, mean_rate, rng)
                await conn.copy_records_to_table(
                    "demand_lines", records=rows, columns=["sku", "location", "day", "qty", "lines"]
                )
                written += len(rows)
                bar.update(task, completed=first + count)
        await conn.execute("ANALYZE demand_lines")
    finally:
        await conn.close()
    return written


CHILD = """
import asyncio, json, resource
from services.replenisher.__main__ import forecast_now
from shared.settings import Settings
asyncio.run(forecast_now(Settings()))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"peak_rss_kib": int(status["VmHWM"].split()[0]),
                  "cpu_seconds": usage.ru_utime + usage.ru_stime}))
"""
"""The pass as ``python -m services.replenisher forecast`` runs it, then the process's own
peak RSS (``VmHWM``: getrusage's ``ru_maxrss`` would carry over the peak of the process it was
forked from, this one) and CPU."""


def plan_in_child(url: str) -> dict[str, object]:
    """The planning pass in a process of its own on the scratch database."""
    started = time.perf_counter()
    env = {**os.environ, "STOCKLEDGER_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    *printed, last = done.stdout.strip().splitlines()
    figures = json.loads(last)
    return {
        "peak_rss_mb": round(figures["peak_rss_kib"] / 1024, 1),
        "cpu_seconds": round(figures["cpu_seconds"], 1),
        "seconds": round(seconds, 1),
        "output": printed[-1] if printed else "",
    }


async def run(args: argparse.Namespace, console: Console) -> dict[str, object]:
    base = Settings()
    name = f"bench_plan_{uuid.uuid4().hex[:8]}"
    url = await scratch_database(base, name)
    try:
        started = time.perf_counter()
        rows = await fill(url, args.items, args.days, args.lines_per_item_day, console)
        conn = await asyncpg.connect(url)
        try:
            lines = await conn.fetchval("SELECT sum(lines) FROM demand_lines")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('demand_lines'))"
            )
        finally:
            await conn.close()
        console.print(
            f"{args.items:,} items, {args.days} days: {lines:,} order lines in {rows:,} rows"
            f" ({size}), written in {time.perf_counter() - started:.0f}s"
        )
        console.print("planning every item in the replenisher's process …")
        child = await asyncio.to_thread(plan_in_child, url)
    finally:
        if not args.keep:
            await drop_database(base, name)
    return {
        "items": args.items,
        "days": args.days,
        "order_lines": lines,
        "rows": rows,
        **child,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.planning", description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--lines-per-item-day", type=float, default=0.17)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    console = Console()
    result = asyncio.run(run(args, console))
    console.print(
        f"planning pass: peak RSS {result['peak_rss_mb']} MB, {result['cpu_seconds']} s of CPU,"
        f" {result['seconds']} s; {result['output']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
