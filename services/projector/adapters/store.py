"""The read model in PostgreSQL: levels applied batch by batch, levels and history read back.

A batch is one transaction: the rows of its items are created if missing and locked in sorted
order, the entries at or below each row's position are dropped, the rest is added, and the rows'
new levels are published before the transaction commits, the rows still locked.

Publishing under the rows' locks keeps ``stock.levels.v1`` from going backwards: a projector that
owns an item after a rebalance waits at the lock until the former owner's levels are on the topic,
and then publishes a level at least as recent, after them. Were the levels published after the
commit, the former owner's could land after the new owner's newer ones (a slow broker).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import add_changes, lock_items
from shared.levels import STATES, Change, ItemKey, changes

LEVELS = ("sku", "location", *STATES, "available", "position", "updated_at")
LEVEL_COLUMNS = ", ".join(LEVELS)

_LEVELS_OF = f"""
SELECT {LEVEL_COLUMNS} FROM stock_levels l
JOIN unnest($1::text[], $2::text[]) AS k(sku, location) USING (sku, location)
"""
# The API reads one item's ledger entries: its history by position, its level as of a time.
HISTORY = """
SELECT position, entry_id, sku, location, kind, on_hand, committed, damaged, quality_control,
       incoming, occurred_at, recorded_at, source_event_id, source_type, reference, detail
FROM ledger_entries
WHERE sku = $1 AND location = $2 AND position > $3 ORDER BY position LIMIT $4
"""
LEVEL_AS_OF = """
SELECT count(*) AS entries, coalesce(sum(on_hand), 0) AS on_hand,
       coalesce(sum(committed), 0) AS committed, coalesce(sum(damaged), 0) AS damaged,
       coalesce(sum(quality_control), 0) AS quality_control,
       coalesce(sum(incoming), 0) AS incoming,
       EXISTS (SELECT 1 FROM ledger_entries WHERE sku = $1 AND location = $2) AS known
FROM ledger_entries WHERE sku = $1 AND location = $2 AND occurred_at <= $3
"""

# The API pool plans each statement for its own values, against the table as it is. asyncpg
# prepares and caches every statement, and after five executions PostgreSQL may settle on a
# generic plan chosen while the ledger was small, and keep it as the ledger grows: a sequential
# scan for the level as of a time, and for the history a walk of the primary key from the start
# (the ledger's remedy, sequential scans priced out, leaves that one). On a ledger grown from 50
# to 200,000 entries with no analyze since, each took 70 to 100 ms instead of 0.1 ms. Planning
# such small statements each time costs far less.
API_SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


class ReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(
        self,
        entries: Sequence[Mapping[str, Any]],
        publish: Callable[[list[asyncpg.Record]], Awaitable[None]] | None = None,
    ) -> tuple[dict[ItemKey, Change], list[asyncpg.Record]]:
        """Apply a batch of ledger entries; returns what changed and the current level of every
        item the batch touched (changed or not, so a redelivered batch republishes them).

        ``publish`` is given those levels before the transaction commits. Should it fail, the
        transaction commits all the same (the entries are applied, whatever became of their
        levels) and its error is raised: trying again publishes the levels as they are then."""
        keys = sorted({(e["sku"], e["location"]) for e in entries})
        failed: Exception | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            applied = await lock_items(conn, "stock_levels", keys)
            changed = changes(entries, applied)
            levels = await add_changes(conn, "stock_levels", changed, returning=LEVELS)
            # items the batch brought nothing new to (redelivered): published again all the same
            unchanged = [k for k in keys if k not in changed]
            if unchanged:
                skus, locations = [k[0] for k in unchanged], [k[1] for k in unchanged]
                levels += await conn.fetch(_LEVELS_OF, skus, locations)
            if publish is not None:
                try:
                    await publish(levels)
                except Exception as exc:  # raised once the transaction has committed
                    failed = exc
        if failed is not None:
            raise failed
        return changed, levels

    async def level(self, sku: str, location: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE sku = $1 AND location = $2",
            sku,
            location,
        )

    async def levels_of_sku(self, sku: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE sku = $1 ORDER BY location", sku
        )

    async def level_as_of(self, sku: str, location: str, as_of: datetime) -> asyncpg.Record | None:
        """The sums of the item's entries that occurred at or before ``as_of``; None when the
        item has no entry at all."""
        return await self.pool.fetchrow(LEVEL_AS_OF, sku, location, as_of)

    async def history(
        self, sku: str, location: str, after: int, limit: int
    ) -> list[asyncpg.Record]:
        return await self.pool.fetch(HISTORY, sku, location, after, limit)

    async def at_location(
        self, location: str, after: str, limit: int, oversold: bool, below_reorder_point: bool
    ) -> list[asyncpg.Record]:
        conditions = ["l.location = $1", "l.sku > $2"]
        if oversold:
            conditions.append("l.available < 0")
        if below_reorder_point:
            conditions.append(
                "r.reorder_point IS NOT NULL AND l.available + l.incoming <= r.reorder_point"
            )
        columns = ", ".join(f"l.{c}" for c in LEVELS)
        return await self.pool.fetch(
            f"SELECT {columns}, r.reorder_point FROM stock_levels l"
            " LEFT JOIN reorder_points r USING (sku, location)"
            f" WHERE {' AND '.join(conditions)} ORDER BY l.sku LIMIT $3",
            location,
            after,
            limit,
        )

    async def lag(self) -> int:
        """Ledger entries written but not yet applied here (head minus the highest applied)."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT coalesce(max(position), 0) FROM ledger_entries)"
            " - (SELECT coalesce(max(position), 0) FROM stock_levels) AS lag"
        )
        return max(0, int(row["lag"])) if row else 0
