"""The projector's API pool keeps reading an item's ledger entries by the item's indexes as the
ledger grows, whatever plans PostgreSQL cached while it was small."""

from __future__ import annotations

import asyncpg
import pytest

from services.projector.adapters.store import HISTORY, LEVEL_AS_OF
from services.projector.app import api_pool
from shared.db import Connection
from shared.settings import Settings

pytestmark = pytest.mark.integration

# name: (statement, parameter types, arguments)
STATEMENTS = {
    "history": (HISTORY, "text, text, bigint, int", "'SKU-1', 'UK', 0, 100"),
    "level as of": (LEVEL_AS_OF, "text, text, timestamptz", "'SKU-1', 'UK', now()"),
}
ITEM_INDEXES = ("ledger_entries_item_position", "ledger_entries_item_occurred")


async def add_entries(owner: asyncpg.Connection, count: int, items: int) -> None:
    await owner.execute(
        "INSERT INTO ledger_entries (entry_id, source_event_id, line_no, sku, location, kind,"
        " on_hand, occurred_at, source_type)"
        " SELECT gen_random_uuid(), gen_random_uuid(), 1, 'SKU-' || (n % $2), 'UK', 'received',"
        " 1, now(), 'scan.received' FROM generate_series(1, $1) n",
        count,
        items,
    )


async def prepare(conn: Connection) -> None:
    """Each statement prepared and run past the five custom plans PostgreSQL tries first."""
    for n, (statement, types, args) in enumerate(STATEMENTS.values()):
        await conn.execute(f"PREPARE s{n}({types}) AS {statement}")
        for _ in range(8):
            await conn.execute(f"EXECUTE s{n}({args})")


async def plans(conn: Connection) -> dict[str, str]:
    found = {}
    for n, (name, (_, _, args)) in enumerate(STATEMENTS.items()):
        rows = await conn.fetch(f"EXPLAIN EXECUTE s{n}({args})")
        found[name] = "\n".join(r[0] for r in rows)
        await conn.execute(f"DEALLOCATE s{n}")
    return found


async def test_the_api_pool_reads_by_the_items_index_after_the_ledger_grows(
    settings: Settings, database_url: str
) -> None:
    owner = await asyncpg.connect(database_url)
    pool = await api_pool(settings)
    plain = await asyncpg.connect(database_url)  # a connection with PostgreSQL's defaults
    try:
        # a young ledger, analyzed; then no analyze (autovacuum's) comes to replace the plans
        await owner.execute("ALTER TABLE ledger_entries SET (autovacuum_enabled = false)")
        await add_entries(owner, 50, items=50)
        await owner.execute("ANALYZE ledger_entries")
        async with pool.acquire() as conn:
            mode = await conn.fetchval("SHOW plan_cache_mode")
            await prepare(conn)
            await prepare(plain)
            await add_entries(owner, 50_000, items=5_000)
            kept, trapped = await plans(conn), await plans(plain)
    finally:
        await plain.close()
        await pool.close()
        await owner.close()
    # the trap is real here: with the defaults, both scan the whole table
    assert "Seq Scan on ledger_entries" in trapped["level as of"], trapped
    assert not any(index in trapped["history"] for index in ITEM_INDEXES), trapped
    for name, plan in kept.items():
        assert "Seq Scan" not in plan, (name, plan)
        assert "ledger_entries_pkey" not in plan, (name, plan)
        assert any(index in plan for index in ITEM_INDEXES), (name, plan)
    assert mode == "force_custom_plan"
