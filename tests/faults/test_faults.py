"""Faults during a replay: services killed with kill -9, the broker and the database restarted,
instances added and removed.

Afterwards the ledger holds every input event exactly once (its stock equals the reference's),
the read model equals a fold of the ledger, and every replenishment request was raised once and
published. ``make test-faults`` runs it at full size (FAULT_EVENTS events, 100,000 by default,
and FAULT_CHUNKS faults, 12 by default, one after each chunk of the input); the regular suite runs
a short one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from shared.levels import fold
from shared.settings import Settings
from shared.topics import REPLENISHMENT_REQUESTS

from .. import events as ev
from ..conftest import ROOT
from ..integration.test_ledger_service import _balances, processed_count
from ..integration.test_projector import ledger_entries, publish, read_model
from ..kafka_io import eventually, read_topic
from ..reference import LOCATIONS, SKUS, deliveries, random_history, reference_balances
from ..services import start_process

EVENTS = int(os.environ.get("FAULT_EVENTS", "12000"))
CHUNKS = int(os.environ.get("FAULT_CHUNKS", "12"))
# how long the services may take to catch up once the input stops: a bigger run leaves more behind
CATCH_UP_S = max(240.0, EVENTS / 200)
# the whole test: the project's 300 s per test would stop a full-size run halfway through
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(max(300.0, EVENTS / 100 + CHUNKS * 20 + CATCH_UP_S)),
]
# The history is made in blocks of this many events, each with items, orders and references of
# its own: one random_history reuses six orders throughout, and at 500,000 events each order line
# would collect some 40,000 shipment reports, which the ledger keeps (a line's units are dated by
# their earliest report) and walks for every report that arrives out of time order. Each batch
# then took longer than the one before (the ledger spent 87% of its time there and fell to
# 150 events/s). Real order lines have a few reports each.
BLOCK = 12_000
# as the local stack runs them: the ledger's relay as its own process
SERVICES = ("ledger", "ledger.relay", "projector", "replenisher")


class Service:
    def __init__(self, name: str, settings: Settings, log: Path) -> None:
        self.name, self.settings, self.log = name, settings, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_process(
            self.name,
            self.settings,
            self.log,
            STOCKLEDGER_BATCH_MAX_RECORDS="500",
            STOCKLEDGER_FORECAST_INTERVAL_S="2",
            STOCKLEDGER_LEDGER_RELAY="false",
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def restart(script: str) -> None:
    path = ROOT / "deploy/scripts" / script
    subprocess.run([path, "stop"], check=True, capture_output=True)
    for _attempt in range(2):  # one more try if the server is slow to come back
        started = subprocess.run([path, "start"], capture_output=True, text=True, check=False)
        if started.returncode == 0:
            return
    raise AssertionError(f"{script} start failed twice:\n{started.stdout}\n{started.stderr}")


async def replay_setup(
    settings: Settings, rng: random.Random, size: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A random history (with items certain to cross their reorder point, and min-max policies
    so that requests are raised) and its delivery (shuffled within keys, with duplicates)."""
    tags = [f"B{n}-" if n else "" for n in range((size + BLOCK - 1) // BLOCK)]
    history = [
        event
        for n, tag in enumerate(tags)
        for event in random_history(rng, min(BLOCK, size - n * BLOCK), tag)
    ]
    # items that certainly cross their reorder point, whatever the order of delivery
    for n in range(4):
        history.append(ev.received(f"CROSS-{n}", "UK", 100))
        history.append(ev.placed(f"CROSS-O{n}", "UK", [("1", f"CROSS-{n}", 70)]))
    pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1)
    try:
        await pool.executemany(  # a min-max policy for every item, so requests are raised
            "INSERT INTO replenishment_policies (sku, location, policy) VALUES ($1, $2, $3)",
            [
                (
                    f"{tag}SKU-{n}",
                    loc,
                    orjson.dumps({"policy": "min_max", "min_qty": 40, "max_qty": 120}).decode(),
                )
                for tag in tags
                for n in range(SKUS)
                for loc in LOCATIONS
            ],
        )
    finally:
        await pool.close()
    return history, deliveries(rng, history)


async def nothing_lost_or_duplicated(settings: Settings, history: list[dict[str, Any]]) -> None:
    """Wait for every service to catch up, then: the ledger holds every event once, the read
    model is a fold of the ledger, every request was raised once and published."""
    await eventually(lambda: _ledger_has(settings, len(history)), seconds=CATCH_UP_S)
    await eventually(lambda: _model_is_fold(settings), seconds=CATCH_UP_S)
    await eventually(lambda: _replenisher_caught_up(settings), seconds=CATCH_UP_S)
    await eventually(lambda: _requests_published(settings), seconds=CATCH_UP_S / 2)
    assert await processed_count(settings) == len(history)
    assert await _balances(settings) == reference_balances(history)
    assert await read_model(settings) == fold(await ledger_entries(settings))
    await _requests_once(settings)


def fault_kinds(rng: random.Random, count: int) -> list[str]:
    """``count`` faults, each kind as often as the others (to within one) and spread over the
    run: rounds of every kind, in a fixed order for the first two rounds, shuffled after."""
    kinds = [*(f"kill -9 {name}" for name in SERVICES), "restart kafka", "restart postgresql"]
    chosen: list[str] = []
    while len(chosen) < count:
        round_ = list(kinds)
        if len(chosen) >= len(kinds) * 2:
            rng.shuffle(round_)
        chosen.extend(round_)
    return chosen[:count]


async def test_faults_during_a_replay_lose_and_duplicate_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    local = not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("DATABASE_URL"))
    rng = random.Random(2011)
    history, delivered = await replay_setup(settings, rng, EVENTS)
    services = {name: Service(name, settings, tmp_path / f"{name}.log") for name in SERVICES}
    for s in services.values():
        s.start()
    faults: Counter[str] = Counter()
    chunks = CHUNKS
    try:
        for n, kind in enumerate(fault_kinds(rng, chunks)):
            part = delivered[n * len(delivered) // chunks : (n + 1) * len(delivered) // chunks]
            await publish(settings, part)
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            if kind.startswith("kill") or not local:
                name = kind.split()[-1] if kind.startswith("kill") else rng.choice(SERVICES)
                services[name].kill()
                services[name].start()
                faults[f"kill -9 {name}"] += 1
            else:
                await asyncio.to_thread(
                    restart, "kafka.sh" if kind == "restart kafka" else "postgres.sh"
                )
                faults[kind] += 1
            for s in services.values():
                assert s.alive(), f"{s.name} died; see {s.log}"
        await nothing_lost_or_duplicated(settings, history)
    finally:
        for s in services.values():
            s.stop()
    print(f"faults injected: {dict(faults)}")
    assert sum(faults.values()) == chunks


async def test_instances_added_and_removed_mid_stream_lose_and_duplicate_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """Each service scaled between one and two instances in one consumer group while the input
    flows: a second instance joins, then one of the two leaves (SIGTERM), and so on."""
    rng = random.Random(2012)
    history, delivered = await replay_setup(settings, rng, max(EVENTS // 2, 2_000))
    instances = {
        name: [Service(name, settings, tmp_path / f"{name}-{i}.log") for i in (0, 1)]
        for name in SERVICES
    }
    for name in SERVICES:
        instances[name][0].start()
    # per step, each service: start the idle instance (two running) or stop one (one running)
    changes: Counter[str] = Counter()
    steps = 8
    try:
        for n in range(steps):
            part = delivered[n * len(delivered) // steps : (n + 1) * len(delivered) // steps]
            await publish(settings, part)
            await asyncio.sleep(rng.uniform(2.0, 4.0))  # long enough for the group to rebalance
            for name in SERVICES:
                running = [s for s in instances[name] if s.alive()]
                if len(running) == 1:
                    next(s for s in instances[name] if not s.alive()).start()
                    changes[f"{name} added"] += 1
                else:
                    rng.choice(running).stop()
                    changes[f"{name} removed"] += 1
            assert all(any(s.alive() for s in group) for group in instances.values())
        await nothing_lost_or_duplicated(settings, history)
    finally:
        for group in instances.values():
            for s in group:
                s.stop()
    print(f"instances changed: {dict(changes)}")
    assert set(changes.values()) == {steps // 2}, changes  # each service: 4 joins, 4 leaves


async def _ledger_has(settings: Settings, n: int) -> bool:
    try:
        return await processed_count(settings) >= n
    except (OSError, asyncpg.PostgresError):
        return False


async def _model_is_fold(settings: Settings) -> bool:
    try:
        return await read_model(settings) == fold(await ledger_entries(settings))
    except (OSError, asyncpg.PostgresError):
        return False


async def _replenisher_caught_up(settings: Settings) -> bool:
    """The replenisher has applied every item's last ledger entry (so it has decided on it)."""
    try:
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        behind = await conn.fetchval(
            "SELECT count(*) FROM (SELECT sku, location, max(position) AS head"
            " FROM ledger_entries GROUP BY sku, location) l"
            " LEFT JOIN replenisher_items r USING (sku, location)"
            " WHERE r.position IS DISTINCT FROM l.head"
        )
        return bool(behind == 0)
    finally:
        await conn.close()


async def _requests(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return await conn.fetch(
            "SELECT r.request_id, r.sku, r.location, r.published_at, i.requests_made"
            " FROM replenishment_requests r JOIN replenisher_items i USING (sku, location)"
        )
    finally:
        await conn.close()


async def _requests_published(settings: Settings) -> bool:
    return all(r["published_at"] is not None for r in await _requests(settings))


async def _requests_once(settings: Settings) -> None:
    rows = await _requests(settings)
    assert rows, "no request was raised: the test raised nothing to check"
    per_item = Counter((r["sku"], r["location"]) for r in rows)
    for r in rows:  # each item's requests are numbered 1..n: none lost, none raised twice
        assert per_item[(r["sku"], r["location"])] == r["requests_made"]
    published = await read_topic(
        settings.kafka_bootstrap_servers, settings.topic_prefix + REPLENISHMENT_REQUESTS, len(rows)
    )
    ids = Counter(orjson.loads(m.value)["data"]["request_id"] for m in published)
    assert set(ids) == {r["request_id"] for r in rows}
