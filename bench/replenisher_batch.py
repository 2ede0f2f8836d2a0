"""``python -m bench.replenisher_batch``: CPU per 1,000 ledger entries of the replenisher's batch
path (``ReplenisherStore.apply``), in process.

The input is the end-to-end run's (``bench.endtoend.CpuRun``: the workload's events at 5,000 a
second of event time, the day turning early in the warm-up), appended by the ledger on a scratch
database and read back as its relay renders them, so the entries are byte for byte those of
``stock.ledger.v1``. A second scratch database holds the replenisher's state after the warm-up's
entries (decided on in event time, the planning pass at the turn of the day, as the service
does); every round copies it (``CREATE DATABASE ... TEMPLATE``) and applies the same measured
entries in batches of ``--batch``, decoded from their bytes as the service decodes them. Each
round reports the ms of CPU per 1,000 entries of this process in ``apply``
(``time.process_time``) and of its PostgreSQL backend (``/proc/<pid>/stat``, so the server must
run on this machine); the first batch of a round is applied unmeasured (statements prepared on
the fresh connection).

``--against REV`` measures ``services/replenisher/adapters/store.py`` as it was at the git
revision ``REV`` (or as it is in the file ``REV``) too, in alternating rounds with the working
tree's (``--store``: another file's), on the same entries from the same state: the figures are
paired, which on a shared machine matters more than their level. ``--profile FILE`` writes a
cProfile of the working tree's measured batches. It runs as the service does:
the collector threshold of ``shared.runner.run_service``, what exists before the first batch
frozen, and the service's pool (no session settings of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from services.ledger.adapters.postgres import SESSION_SETTINGS, PostgresLedgerStore
from services.ledger.adapters.relay import rendered
from services.ledger.adapters.store import Accepted
from services.replenisher.adapters.store import ReplenisherStore
from services.replenisher.app import (
    EventTimeReplay,
    default_policy,
    line_settings,
)
from shared.events.codec import Rejection, decode
from shared.settings import Settings

from .endtoend import CpuRun
from .processes import ROOT, cpu_seconds
from .scratch import scratch_database
from .workload import input_messages

STORE_PATH = "services/replenisher/adapters/store.py"
GIT = shutil.which("git") or "git"
GC_THRESHOLD = 50_000  # shared.runner.run_service's default, which the replenisher runs with


def store_at(rev: str | None, path: Path | None = None) -> type[ReplenisherStore]:
    """``ReplenisherStore`` as ``store.py`` was at the git revision ``rev`` (None: as it is in
    the file ``path``, by default the working tree's), imported as a module of its own beside
    ``store``: both variants of a comparison are imported alike."""
    if rev is None:
        source = (path or ROOT / STORE_PATH).read_text()
    else:
        source = subprocess.run(
            [GIT, "show", f"{rev}:{STORE_PATH}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    package = "services.replenisher.adapters"
    importlib.import_module(package)
    tag = "current" if rev is None else "".join(c if c.isalnum() else "_" for c in rev)
    name = f"{package}._store_{tag}"
    module = types.ModuleType(name)
    module.__package__ = package
    module.__file__ = str(path or ROOT / STORE_PATH) if rev is None else f"{rev}:{STORE_PATH}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file
    store: type[ReplenisherStore] = module.ReplenisherStore
    return store


def compared(against: str, store: Path | None) -> dict[str, type[ReplenisherStore]]:
    """The stores of a comparison: the current one (``store``, by default the working tree's)
    and ``against`` (a git revision, or a file)."""
    path = Path(against)
    return {
        "current": store_at(None, store),
        against: store_at(None, path) if path.is_file() else store_at(against),
    }


async def ledger_entries(
    url: str, warm_up: int, events: int, run: CpuRun
) -> tuple[list[bytes], int]:
    """The ledger's entries of the run's first ``warm_up + events`` events, as the relay renders
    them, and how many of them the first ``warm_up`` events made."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, server_settings=SESSION_SETTINGS)
    try:
        store = PostgresLedgerStore(pool)
        messages = list(
            input_messages(warm_up + events, seed=999, start=run.start, per_second=run.rate)
        )
        first = 0
        for part in (messages[:warm_up], messages[warm_up:]):
            for s in range(0, len(part), 500):
                batch = []
                for topic, _, value in part[s : s + 500]:
                    event = decode(value)
                    if not isinstance(event, Rejection):
                        batch.append(Accepted(topic, event))
                await store.append(batch)
            if not first:
                first = await pool.fetchval("SELECT count(*) FROM ledger_entries")
        out: list[bytes] = []
        async with pool.acquire() as conn:
            while rows := await rendered(conn, len(out), 20_000):
                out += [bytes(r["message"]) for r in rows]
    finally:
        await pool.close()
    return out, int(first)


async def warm_up(url: str, settings: Settings, entries: list[bytes], batch: int) -> None:
    """The replenisher's state after ``entries``, decided on in event time as the service
    decides (its planning passes where they fall due)."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        store = ReplenisherStore(pool, default_policy(settings), line_settings(settings))
        replay = EventTimeReplay(pool, settings, store)
        for s in range(0, len(entries), batch):
            await replay.apply([orjson.loads(m) for m in entries[s : s + batch]])
    finally:
        await pool.close()


async def copy_of(admin: asyncpg.Connection, template: str, name: str) -> None:
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")


async def one_round(
    url: str,
    store_class: type[ReplenisherStore],
    settings: Settings,
    entries: list[bytes],
    batch: int,
    profile: cProfile.Profile | None,
) -> tuple[float, float, int]:
    """Apply ``entries`` in batches on ``url``: ms of CPU per 1,000 entries of this process in
    ``apply`` and of the backend, and the requests raised."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        store = store_class(pool, default_policy(settings), line_settings(settings))
        await store.apply([orjson.loads(m) for m in entries[:batch]])  # unmeasured
        measured = entries[batch:]
        raised = 0
        python = 0.0
        be0 = cpu_seconds(pid)
        for s in range(0, len(measured), batch):
            part = [orjson.loads(m) for m in measured[s : s + batch]]
            if profile is not None:
                profile.enable()
            t0 = time.process_time()
            raised += len(await store.apply(part))
            python += time.process_time() - t0
            if profile is not None:
                profile.disable()
        backend = cpu_seconds(pid) - be0
    finally:
        await pool.close()
    per = 1_000_000 / len(measured)
    return python * per, backend * per, raised


def summary(rounds: list[tuple[float, float, int]]) -> dict[str, Any]:
    python = [p for p, _, _ in rounds]
    backend = [b for _, b, _ in rounds]
    pair = [p + b for p, b, _ in rounds]
    return {
        "rounds_ms_per_1000": [[round(p, 1), round(b, 1)] for p, b, _ in rounds],
        "requests_raised": sorted({r for _, _, r in rounds}),
        "python_ms_per_1000": statistics.median(python),
        "backend_ms_per_1000": statistics.median(backend),
        "pair_ms_per_1000": statistics.median(pair),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    cpu_run = CpuRun()
    tag = uuid.uuid4().hex[:8]
    source, template, copy = (f"bench_replbatch_{tag}_{n}" for n in ("ledger", "t", "r"))
    variants: dict[str, type[ReplenisherStore]] = {"current": ReplenisherStore}
    if args.against:  # both imported alike
        variants = compared(args.against, args.store)
    profile = cProfile.Profile() if args.profile else None
    url = settings.database_url.get_secret_value()
    admin = await asyncpg.connect(url.rpartition("/")[0] + "/postgres")
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    try:
        entries, first = await ledger_entries(
            await scratch_database(settings, source), args.warm_up, args.events, cpu_run
        )
        await warm_up(
            await scratch_database(settings, template), settings, entries[:first], args.batch
        )
        measured = entries[first:]
        gc.set_threshold(GC_THRESHOLD, 20, 100)
        gc.collect()
        gc.freeze()
        names = list(variants)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                await copy_of(admin, template, copy)
                results[name].append(
                    await one_round(
                        url.rpartition("/")[0] + "/" + copy,
                        variants[name],
                        settings,
                        measured,
                        args.batch,
                        profile if name == "current" else None,
                    )
                )
    finally:
        for name in (source, template, copy):
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    if profile is not None:
        profile.dump_stats(args.profile)
    out: dict[str, Any] = {
        "entries_measured": len(measured) - args.batch,
        "batch": args.batch,
        "rounds": args.rounds,
    }
    for name, rounds in results.items():
        out[name] = summary(rounds)
    if args.against:
        cur, old = results["current"], results[args.against]
        ratios = [(c[0] + c[1]) / (o[0] + o[1]) for c, o in zip(cur, old, strict=True)]
        out["current_over_against_pair"] = {
            "rounds": [round(x, 3) for x in ratios],
            "median": statistics.median(ratios),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replenisher_batch", description=__doc__)
    parser.add_argument("--warm-up", type=int, default=50_000, help="events before (50,000)")
    parser.add_argument("--events", type=int, default=30_000, help="events measured (30,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="entries an apply (1,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each variant (5)")
    parser.add_argument(
        "--against", help="a git revision (or a file) whose store.py to measure alongside"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="with --against: the store.py measured as current (the working tree's)",
    )
    parser.add_argument("--profile", help="write a cProfile of the measured batches here")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
