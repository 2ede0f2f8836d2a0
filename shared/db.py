"""PostgreSQL plumbing shared by the services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:  # the driver's classes are generic only in its type stubs
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from a pool: both take the same calls."""


# Per-item level tables (the projector's stock_levels, the replenisher's replenisher_items) share
# one shape: sku, location, the five states and the last applied ledger position. These apply a
# batch of changes to such a table: rows created if missing and locked in sorted order, so that
# two instances briefly owning the same item during a rebalance apply each entry once.

LEVEL_TABLES = ("stock_levels", "replenisher_items")


async def lock_items(
    conn: Connection, table: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Lock every item's row, creating the missing ones, and return each item's applied position.

    ``keys`` come sorted. The rows that exist are locked first, in that order, in one statement;
    the items seen for the first time are then inserted and locked, in that order too. Once an
    item has a row (nearly always), a batch takes one statement. Two instances that briefly own
    the same items during a rebalance wait for each other, or, if each meets a new item the
    other has just created, PostgreSQL breaks the deadlock and the batch is retried: each entry
    is applied once either way.
    """
    assert table in LEVEL_TABLES
    applied = await _locked(conn, table, keys)
    if len(applied) < len(keys):
        missing = [k for k in keys if k not in applied]
        await conn.execute(
            f"INSERT INTO {table} (sku, location) SELECT * FROM unnest($1::text[], $2::text[])"
            " ORDER BY 1, 2 ON CONFLICT (sku, location) DO NOTHING",
            [k[0] for k in missing],
            [k[1] for k in missing],
        )
        applied.update(await _locked(conn, table, missing))
    return applied


async def _locked(
    conn: Connection, table: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        f"SELECT t.sku, t.location, t.position FROM {table} t"
        " JOIN unnest($1::text[], $2::text[]) AS k(sku, location) USING (sku, location)"
        " ORDER BY t.sku, t.location FOR UPDATE OF t",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r[0], r[1]): r[2] for r in rows}


async def add_changes(
    conn: Connection,
    table: str,
    changed: dict[tuple[str, str], Any],
    returning: Sequence[str] = (),
) -> list[asyncpg.Record]:
    """Add each item's summed deltas (a :class:`shared.levels.Change`) and move its position;
    returns the ``returning`` columns of the changed rows, as they are now (none if empty)."""
    assert table in LEVEL_TABLES
    stamp = ", updated_at = now()" if table == "stock_levels" else ""
    if not changed:
        return []
    items = sorted(changed)
    query = f"""UPDATE {table} t SET
          on_hand = t.on_hand + c.on_hand, committed = t.committed + c.committed,
          damaged = t.damaged + c.damaged, quality_control = t.quality_control + c.quality_control,
          incoming = t.incoming + c.incoming, position = c.position{stamp}
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                    $6::bigint[], $7::bigint[], $8::bigint[])
          AS c(sku, location, on_hand, committed, damaged, quality_control, incoming, position)
        WHERE t.sku = c.sku AND t.location = c.location"""
    args = (
        [k[0] for k in items],
        [k[1] for k in items],
        *([changed[k].deltas[i] for k in items] for i in range(5)),
        [changed[k].last_position for k in items],
    )
    if not returning:
        await conn.execute(query, *args)
        return []
    return list(
        await conn.fetch(query + " RETURNING " + ", ".join(f"t.{c}" for c in returning), *args)
    )
