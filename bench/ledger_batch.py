"""``python -m bench.ledger_batch``: CPU per 1,000 events of the ledger's batch path, in process.

Decodes the workload's input messages (``bench.workload``) and appends them in batches with
``PostgresLedgerStore.append`` on a scratch database, one connection. Each round of ``--round``
events reports the ms of CPU per 1,000 events of this process (``time.process_time``) and of its
PostgreSQL backend (``/proc/<pid>/stat``, so the server must run on this machine); the first
round warms up and is left out of the medians. ``--profile FILE`` writes a cProfile of the
measured rounds. It runs as the service does: the service's garbage-collector threshold, what
exists before the first batch frozen, and the service's session settings on the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import time
import uuid

import asyncpg

from services.ledger.adapters.postgres import SESSION_SETTINGS, PostgresLedgerStore
from services.ledger.adapters.store import Accepted
from services.ledger.app import GC_THRESHOLD
from shared.events.codec import Rejection, decode
from shared.settings import Settings

from .processes import cpu_seconds
from .scratch import drop_database, scratch_database
from .workload import input_messages


async def run(args: argparse.Namespace) -> dict[str, object]:
    base = Settings()
    name = f"bench_ledger_batch_{uuid.uuid4().hex[:8]}"
    profile = cProfile.Profile() if args.profile else None
    rounds: list[tuple[float, float]] = []
    try:
        url = await scratch_database(base, name)
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=1, server_settings=SESSION_SETTINGS
        )
        try:
            async with pool.acquire() as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
            store = PostgresLedgerStore(pool)
            messages = list(input_messages(args.events))
            gc.set_threshold(GC_THRESHOLD, 20, 100)
            gc.collect()
            gc.freeze()
            for r in range(0, len(messages), args.round):
                chunk = messages[r : r + args.round]
                if profile is not None and r:
                    profile.enable()
                py0, be0 = time.process_time(), cpu_seconds(pid)
                for s in range(0, len(chunk), args.batch):
                    batch = []
                    for topic, _, value in chunk[s : s + args.batch]:
                        event = decode(value)
                        if not isinstance(event, Rejection):
                            batch.append(Accepted(topic, event))
                    await store.append(batch)
                py1, be1 = time.process_time(), cpu_seconds(pid)
                if profile is not None:
                    profile.disable()
                per = 1_000_000 / len(chunk)
                rounds.append(((py1 - py0) * per, (be1 - be0) * per))
        finally:
            await pool.close()
    finally:
        await drop_database(base, name)
    if profile is not None:
        profile.dump_stats(args.profile)
    measured = rounds[1:] or rounds
    python = [p for p, _ in measured]
    backend = [b for _, b in measured]
    return {
        "events": args.events,
        "batch": args.batch,
        "rounds_ms_per_1000": [[round(p, 1), round(b, 1)] for p, b in rounds],
        "python_ms_per_1000": {
            "median": statistics.median(python),
            "min": min(python),
            "max": max(python),
        },
        "backend_ms_per_1000": {
            "median": statistics.median(backend),
            "min": min(backend),
            "max": max(backend),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_batch", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="input events (60,000)")
    parser.add_argument("--round", type=int, default=10_000, help="events a round (10,000)")
    parser.add_argument("--batch", type=int, default=500, help="events an append (500)")
    parser.add_argument("--profile", help="write a cProfile of the measured rounds here")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
