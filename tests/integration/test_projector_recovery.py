"""The read model through crashes, redeliveries and rebalances: always a fold of the ledger."""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

from services.ledger.app import create_service as create_ledger
from services.projector.adapters.store import LEVEL_COLUMNS, ReadModel
from services.projector.app import ProjectorService
from services.projector.app import create_service as create_projector
from shared.levels import fold
from shared.settings import Settings

from ..kafka_io import eventually
from ..reference import random_history
from ..services import running, start_process, with_port
from .test_ledger_service import processed_count
from .test_projector import caught_up, ledger_entries, publish, read_model

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def start_projector(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return start_process("projector", settings, log, STOCKLEDGER_BATCH_MAX_RECORDS="100")


async def _applied(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(position), 0) FROM stock_levels"))


async def rows_applied(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return await _applied(conn)
    finally:
        await conn.close()


async def _first_change(settings: Settings, before: int, seconds: float = 60.0) -> None:
    """Returns within about 10 ms of the read model's first committed change past ``before``:
    a projector can apply the rest of this history within a few tenths of a second of its first
    batch (a fresh-clone run did), so a kill must follow that batch closely to land before it
    has caught up."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        async with asyncio.timeout(seconds):
            while await _applied(conn) <= before:
                await asyncio.sleep(0.01)
    finally:
        await conn.close()


def _starts(log: Path) -> int:
    return log.read_text().count('"message":"projector started"') if log.exists() else 0


async def _started_since(log: Path, starts: int) -> bool:
    return _starts(log) > starts


async def _ledger_has(settings: Settings, n: int) -> bool:
    return await processed_count(settings) >= n


async def test_a_projector_killed_mid_batch_resumes_to_a_fold_of_the_ledger(
    settings: Settings, tmp_path: Path
) -> None:
    history = random_history(random.Random(31), 20_000)
    async with running(create_ledger(settings)):
        await publish(settings, history)
        await eventually(functools.partial(_ledger_has, settings, len(history)), seconds=60)
    kills = 0
    for _ in range(3):
        if await caught_up(settings):
            break  # a projector got to the end before its kill: nothing is left to change
        before = await rows_applied(settings)
        proc = start_projector(settings, tmp_path / "projector.log")
        try:
            await _first_change(settings, before)
            await asyncio.sleep(random.uniform(0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills += not await caught_up(settings)
    log = tmp_path / "projector.log"
    starts = _starts(log)
    proc = start_projector(settings, log)
    try:
        await eventually(lambda: caught_up(settings), seconds=60)
        # the read model may have caught up before this projector started: it must still stop
        # cleanly, once it is running
        await eventually(lambda: _started_since(log, starts), seconds=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert kills >= 1, "every kill came after the projector had caught up: nothing was tested"
    assert await read_model(settings) == fold(await ledger_entries(settings))


async def test_entries_delivered_again_change_nothing(settings: Settings) -> None:
    history = random_history(random.Random(32), 800)
    settings = with_port(settings)
    async with running(create_ledger(settings)), running(create_projector(settings)):
        await publish(settings, history)
        await eventually(lambda: caught_up(settings))
    before = await read_model(settings)
    entries = len(await ledger_entries(settings))
    replay = with_port(settings.model_copy(update={"consumer_group_prefix": "replay"}))
    projector = create_projector(replay)
    async with running(projector):
        await eventually(lambda: _consumed_everything(projector, entries), seconds=30)
    assert await read_model(settings) == before == fold(await ledger_entries(settings))


async def _consumed_everything(projector: ProjectorService, entries: int) -> bool:
    """Every entry was seen again, and none of them applied twice."""
    registry = projector.metrics.registry
    skipped = registry.get_sample_value("stockledger_projector_entries_skipped_total") or 0
    applied = registry.get_sample_value("stockledger_projector_entries_applied_total") or 0
    assert applied == 0
    return skipped >= entries


async def test_two_projectors_in_one_group_stay_correct_through_a_rebalance(
    settings: Settings,
) -> None:
    history = random_history(random.Random(33), 4000)
    first, second = with_port(settings), with_port(settings)
    async with running(create_ledger(settings)), running(create_projector(first)):
        await publish(settings, history[:2000])
        async with running(create_projector(second)):
            await publish(settings, history[2000:3000])
            await asyncio.sleep(1)
        await publish(settings, history[3000:])
        await eventually(functools.partial(_ledger_has, settings, len(history)), seconds=60)
        await eventually(lambda: caught_up(settings), seconds=60)
    assert await read_model(settings) == fold(await ledger_entries(settings))


async def test_a_redelivered_batch_changes_nothing_and_still_returns_every_level(
    database_url: str,
) -> None:
    def entry(position: int, sku: str, on_hand: int) -> dict[str, object]:
        return {"position": position, "sku": sku, "location": "UK", "deltas": {"on_hand": on_hand}}

    first = [entry(1, "MUG", 5), entry(2, "CUP", 3), entry(3, "MUG", 2)]
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        model = ReadModel(pool)
        changed, levels = await model.apply(first)
        assert {(r["sku"], r["on_hand"], r["position"]) for r in levels} == {
            ("MUG", 7, 3),
            ("CUP", 3, 2),
        }
        assert set(changed) == {("MUG", "UK"), ("CUP", "UK")}
        # the whole batch again, with one new entry for a third item: only that one changes,
        # and every item's level comes back, as it is in the read model
        changed, levels = await model.apply([*first, entry(4, "BOWL", 1)])
        assert set(changed) == {("BOWL", "UK")}
        stored = {
            (r["sku"], r["location"]): dict(r)
            for r in await pool.fetch(f"SELECT {LEVEL_COLUMNS} FROM stock_levels")
        }
        assert {(r["sku"], r["location"]): dict(r) for r in levels} == stored
        assert stored[("MUG", "UK")]["on_hand"] == 7
        assert stored[("MUG", "UK")]["available"] == 7
    finally:
        await pool.close()
