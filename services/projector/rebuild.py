"""Rebuild the read model from the ledger while the API keeps answering: build aside, then swap.

The ledger is summed per item in position ranges into a side table; then, in one transaction,
the entries written meanwhile are added, and the live table's rows are replaced by the side
table's. Readers keep seeing the old rows until that transaction commits (MVCC); the projector's
writes wait for it, and afterwards skip the entries the rebuild already counted (each row's
position says how far it goes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from shared.db import Connection

SIDE = "stock_levels_rebuild"
_SUM_RANGE = f"""
INSERT INTO {SIDE} (sku, location, on_hand, committed, damaged, quality_control, incoming,
                    position, updated_at)
SELECT sku, location, sum(on_hand), sum(committed), sum(damaged), sum(quality_control),
       sum(incoming), max(position), max(recorded_at)
FROM ledger_entries WHERE position > $1 AND position <= $2
GROUP BY sku, location
ON CONFLICT (sku, location) DO UPDATE SET
  on_hand = {SIDE}.on_hand + EXCLUDED.on_hand,
  committed = {SIDE}.committed + EXCLUDED.committed,
  damaged = {SIDE}.damaged + EXCLUDED.damaged,
  quality_control = {SIDE}.quality_control + EXCLUDED.quality_control,
  incoming = {SIDE}.incoming + EXCLUDED.incoming,
  position = greatest({SIDE}.position, EXCLUDED.position),
  updated_at = greatest({SIDE}.updated_at, EXCLUDED.updated_at)
"""
_COLUMNS = (
    "sku, location, on_hand, committed, damaged, quality_control, incoming, position, updated_at"
)


@dataclass(frozen=True)
class RebuildResult:
    entries: int
    items: int
    seconds: float

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


async def _sum_range(conn: Connection, after: int, upto: int) -> None:
    await conn.execute(_SUM_RANGE, after, upto)


async def rebuild(
    database_url: str,
    chunk: int = 500_000,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildResult:
    """Rebuild ``stock_levels`` from ``ledger_entries``; ``progress(done, total)`` is called as
    position ranges complete."""
    conn = await asyncpg.connect(database_url)
    started = time.perf_counter()
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {SIDE}")
        await conn.execute(f"CREATE UNLOGGED TABLE {SIDE} (LIKE stock_levels INCLUDING ALL)")
        low = await conn.fetchval("SELECT coalesce(min(position), 1) - 1 FROM ledger_entries")
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_entries")
        count = await conn.fetchval("SELECT count(*) FROM ledger_entries")
        for after in range(low, head, chunk):
            await _sum_range(conn, after, min(after + chunk, head))
            if progress:
                progress(min(after + chunk, head) - low, head - low)
        async with conn.transaction():
            # block the projector's writes (not readers) while the last entries are added
            await conn.execute("LOCK TABLE stock_levels IN SHARE ROW EXCLUSIVE MODE")
            newest = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_entries")
            if newest > head:
                await _sum_range(conn, head, newest)
            await conn.execute("DELETE FROM stock_levels")
            await conn.execute(
                f"INSERT INTO stock_levels ({_COLUMNS}) SELECT {_COLUMNS} FROM {SIDE}"
            )
            items = await conn.fetchval("SELECT count(*) FROM stock_levels")
        await conn.execute(f"DROP TABLE {SIDE}")
    finally:
        await conn.close()
    return RebuildResult(count, items, time.perf_counter() - started)
