"""The ledger store's contract, run against the in-memory twin and against PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.ledger.adapters import postgres
from services.ledger.adapters.postgres import PostgresLedgerStore
from services.ledger.adapters.store import Accepted, LedgerStore, MemoryLedgerStore
from services.ledger.domain.batch import fold
from services.ledger.domain.rules import Entry
from services.ledger.domain.state import Balance, LedgerState
from shared.events.codec import InputEvent

from .. import events as ev
from ..reference import deliveries, random_history, reference_balances
from ..unit.test_ledger_properties import as_dicts

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[LedgerStore]:
    if request.param == "memory":
        yield MemoryLedgerStore()
        return
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield PostgresLedgerStore(pool)
    await pool.close()


def accepted(*events: dict[str, object], topic: str = "inventory.scans.v1") -> list[Accepted]:
    return [Accepted(topic, ev.parse(e)) for e in events]


async def test_an_event_delivered_five_times_on_two_topics_counts_once(store: LedgerStore) -> None:
    receipt = ev.received("MUG", "UK", 5)
    first = await store.append(accepted(receipt, receipt))
    again = await store.append(accepted(receipt, receipt, topic="commerce.orders.v1"))
    last = await store.append(accepted(receipt))
    assert (first.applied, first.duplicates, first.entries) == (1, 1, 1)
    assert (again.applied, again.duplicates) == (0, 2)
    assert (last.applied, last.duplicates) == (0, 1)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=5)}


async def test_a_redelivered_event_without_effect_stays_without_effect(store: LedgerStore) -> None:
    cancel = ev.cancelled("O1")
    await store.append(accepted(cancel))
    await store.append(accepted(ev.placed("O1", "UK", [("1", "MUG", 2)])))
    await store.append(accepted(cancel))
    assert await store.balances() == {}


async def test_a_batch_mixing_recorded_and_new_events_applies_only_the_new(
    store: LedgerStore,
) -> None:
    # The count reads the balance the receipt left: folded with the receipt again, it would see
    # 10 units and take 5 away.
    receipt = ev.received("MUG", "UK", 5)
    await store.append(accepted(receipt))
    result = await store.append(accepted(receipt, ev.counted("MUG", "UK", 5)))
    assert (result.applied, result.duplicates, result.entries) == (1, 1, 1)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=5)}


@pytest.mark.parametrize("failing_slice", [0, 2])
async def test_rules_failing_mid_batch_leave_nothing_recorded(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, failing_slice: int
) -> None:
    # The rules run a slice at a time inside the COPY of their entries: a failure in the first
    # slice, or in a later one after earlier slices' entries were sent, leaves nothing recorded.
    store = PostgresLedgerStore(pool)
    n = 3 * postgres.FOLD_SLICE
    receipts = accepted(*(ev.received("MUG", "UK", 1) for _ in range(n)))
    folded: list[int] = []

    def broken(state: LedgerState, events: list[InputEvent]) -> list[Entry]:
        if len(folded) == failing_slice:
            raise RuntimeError("the rules broke")
        folded.append(len(events))
        return fold(state, events)

    monkeypatch.setattr(postgres, "fold", broken)
    with pytest.raises(RuntimeError, match="the rules broke"):
        await store.append(receipts)
    monkeypatch.undo()
    assert folded == [postgres.FOLD_SLICE] * failing_slice
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == 0
    assert await pool.fetchval("SELECT count(*) FROM ledger_entries") == 0
    result = await store.append(receipts)
    assert (result.applied, result.entries) == (n, n)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=n)}


async def test_a_batch_mixing_every_kind_settles_as_the_reference(store: LedgerStore) -> None:
    rng = random.Random(7)
    history = random_history(rng, 400)
    for chunk in range(0, 400, 57):
        await store.append(accepted(*deliveries(rng, history[chunk : chunk + 57])))
    assert as_dicts(await store.balances()) == reference_balances(history)


async def test_late_counts_unlined_shipments_and_inspections_settle_as_the_reference(
    store: LedgerStore,
) -> None:
    rng = random.Random(17)
    history = random_history(rng, 400, extended=True)
    delivered = deliveries(rng, history)  # shuffled across batches: counts arrive late or early
    refused: set[str] = set()
    for chunk in range(0, len(delivered), 37):
        result = await store.append(accepted(*delivered[chunk : chunk + 37]))
        refused |= {str(a.event.event_id) for a, _, _ in result.refused}
    assert refused
    assert as_dicts(await store.balances()) == reference_balances(history, refused)


async def test_the_ledger_refuses_updates_deletes_and_truncation(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await PostgresLedgerStore(pool).append(accepted(ev.received("MUG", "UK", 5)))
    for statement in (
        "UPDATE ledger_entries SET on_hand = 500",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT sum(on_hand) FROM ledger_entries") == 5


async def test_concurrent_appends_over_the_same_items_neither_deadlock_nor_lose_units(
    pool: asyncpg.Pool,
) -> None:
    rng = random.Random(11)
    history = random_history(rng, 1200)
    delivered = deliveries(rng, history)
    writers = [PostgresLedgerStore(pool) for _ in range(4)]
    slices = [delivered[i::4] for i in range(4)]

    async def write(store: PostgresLedgerStore, events: list[dict[str, object]]) -> None:
        for start in range(0, len(events), 25):
            await store.append(accepted(*events[start : start + 25]))

    async with asyncio.timeout(120):
        await asyncio.gather(*(write(w, s) for w, s in zip(writers, slices, strict=True)))
    assert as_dicts(await writers[0].balances()) == reference_balances(history)
    processed = await pool.fetchval("SELECT count(*) FROM processed_events")
    assert processed == len(history)


@pytest.mark.parametrize(
    ("statement", "types", "args"),
    [
        (postgres._LOAD_ORDERS, "text[]", "'{O1,O2}'"),
        (postgres._UPDATE_ORDERS, "text[], json[]", "'{O1,O2}', '{\"{}\",\"{}\"}'"),
    ],
    ids=["load", "update"],
)
async def test_order_statements_prepared_on_a_small_table_keep_using_its_index(
    database_url: str, statement: str, types: str, args: str
) -> None:
    # A fresh ledger prepares its statements while ledger_orders holds a few orders. Without the
    # ledger's session settings, PostgreSQL soon caches a generic plan that scans the table,
    # comparing each row with every key of a batch, and keeps it as the table grows: lookups
    # took seconds under load. With them, the plan stays on the primary key.
    async def plan(settings: dict[str, str]) -> str:
        conn = await asyncpg.connect(database_url, server_settings=settings)
        try:
            await conn.execute(
                "TRUNCATE ledger_orders;"
                " ALTER TABLE ledger_orders SET (autovacuum_enabled = false);"
                " INSERT INTO ledger_orders SELECT 'X' || n, '{}' FROM generate_series(1, 50) n;"
                " ANALYZE ledger_orders"
            )
            await conn.execute(f"PREPARE statement({types}) AS {statement}")
            for _ in range(8):  # past the five custom plans PostgreSQL tries first
                await conn.execute(f"EXECUTE statement({args})")
            await conn.execute(
                "INSERT INTO ledger_orders SELECT 'O' || n, '{}' FROM generate_series(1, 50000) n"
            )
            rows = await conn.fetch(f"EXPLAIN EXECUTE statement({args})")
            return "\n".join(r[0] for r in rows)
        finally:
            await conn.close()

    assert "Seq Scan on ledger_orders" in await plan({})  # the trap is real here
    kept = await plan(postgres.SESSION_SETTINGS)
    assert "Seq Scan" not in kept, kept
    assert "ledger_orders_pkey" in kept, kept


async def test_a_write_off_before_its_damage_scan_is_remembered_across_batches(
    store: LedgerStore,
) -> None:
    await store.append(
        accepted(ev.received("MUG", "UK", 10), ev.adjusted("MUG", "UK", 2, "write_off"))
    )
    await store.append(accepted(ev.adjusted("MUG", "UK", 3, "damaged")))
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=8, damaged=1)}


def _at(hhmm: str) -> str:
    return f"2011-07-01T{hhmm}:00Z"


async def test_counts_apply_as_of_their_time_whatever_batches_bring_the_movements(
    store: LedgerStore,
) -> None:
    await store.append(
        accepted(
            ev.received("MUG", "UK", 10, occurred_at=_at("09:00")),
            ev.shipped("MUG", "UK", 1, "O2", "1", occurred_at=_at("13:00")),
        )
    )
    await store.append(
        accepted(
            ev.placed("O1", "UK", [("1", "MUG", 2)], occurred_at=_at("10:00")),
            ev.counted("MUG", "UK", 8, occurred_at=_at("12:00")),
        )
    )
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=7, committed=2)}
    await store.append(
        accepted(ev.fulfilled("O1", "UK", [("1", "MUG", 2)], occurred_at=_at("11:30")))
    )
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=7)}


async def test_stock_as_of_a_time_agrees_with_a_count_a_late_movement_was_compensated_for(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresLedgerStore(pool)
    await store.append(accepted(ev.received("MUG", "UK", 10, occurred_at=_at("09:00"))))
    await store.append(accepted(ev.counted("MUG", "UK", 8, occurred_at=_at("12:00"))))
    await store.append(accepted(ev.adjusted("MUG", "UK", 2, "lost", occurred_at=_at("11:30"))))
    as_of = (
        "SELECT coalesce(sum(on_hand), 0) FROM ledger_entries"
        " WHERE sku = 'MUG' AND location = 'UK' AND occurred_at <= $1::text::timestamptz"
    )
    assert [await pool.fetchval(as_of, _at(t)) for t in ("11:00", "11:45", "12:00")] == [10, 8, 8]
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=8)}


async def test_a_request_cancelled_before_confirmation_is_recorded_for_the_requested_item(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "INSERT INTO replenishment_requests (request_id, event_id, sku, location, qty, kind,"
        " needed_by, reason, message) VALUES ('RQ-1', gen_random_uuid(), 'MUG', 'UK', 5,"
        " 'purchase', now(), '{}', '{}')"
    )
    store = PostgresLedgerStore(pool)
    await store.append(accepted(ev.request_cancelled("RQ-1"), ev.request_cancelled("PO-9")))
    rows = await pool.fetch("SELECT sku, location, kind, reference, incoming FROM ledger_entries")
    assert [tuple(r) for r in rows] == [("MUG", "UK", "replenishment_cancelled", "RQ-1", 0)]


async def test_a_reused_event_id_with_other_content_is_rejected_as_a_conflict(
    store: LedgerStore,
) -> None:
    receipt = ev.received("MUG", "UK", 4)
    reused = {**receipt, "data": {**receipt["data"], "qty": 9}, "source": "elsewhere"}
    same_but_source = {**receipt, "source": "another scanner"}
    first = await store.append(accepted(receipt, reused))
    again = await store.append(accepted(same_but_source, reused))
    assert [(a.event.data, reason) for a, reason, _ in first.refused] == [
        (ev.parse(reused).data, "conflict")
    ]
    assert [(reason, detail) for _, reason, detail in again.refused] == [
        ("conflict", f"event_id {receipt['event_id']} was recorded with other content")
    ]
    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (1, 0, 0, 1)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=4)}


async def test_a_redelivery_after_a_conflicting_one_in_the_same_batch_is_a_duplicate(
    store: LedgerStore,
) -> None:
    receipt = ev.received("MUG", "UK", 4)
    reused = {**receipt, "data": {**receipt["data"], "qty": 9}}
    await store.append(accepted(receipt))
    result = await store.append(accepted(reused, receipt, reused))
    assert [(a.event.data.qty, reason) for a, reason, _ in result.refused] == [  # type: ignore[union-attr]
        (9, "conflict"),
        (9, "conflict"),
    ]
    assert (result.applied, result.duplicates) == (0, 1)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=4)}


async def test_an_inspection_of_more_than_quality_control_holds_is_refused_every_time(
    store: LedgerStore,
) -> None:
    too_many = ev.inspected("MUG", "UK", 2, "damaged")
    first = await store.append(
        accepted(
            ev.returned("MUG", "UK", 1, "inspect"),
            too_many,
            ev.inspected("MUG", "UK", 1, "damaged"),
        )
    )
    assert [(a.event.event_id, reason) for a, reason, _ in first.refused] == [
        (ev.parse(too_many).event_id, "schema")
    ]
    assert (first.applied, first.entries) == (3, 2)
    again = await store.append(accepted(too_many))  # redelivered: dead-lettered again
    assert [(reason, detail) for _, reason, detail in again.refused] == [
        ("schema", "qty 2 is more than quality_control holds (1)")
    ]
    assert (again.applied, again.duplicates) == (0, 0)
    assert await store.balances() == {("MUG", "UK"): Balance(on_hand=1, damaged=1)}
