"""The ledger in PostgreSQL: one transaction per batch, idempotent, locked in a fixed order.

Per batch: lock the orders and references, then the items, each with transaction-scoped advisory
locks taken in sorted order so that concurrent instances neither deadlock nor overwrite each
other, and load their state; claim the event ids in ``processed_events`` with their payload hash
(a redelivered event is dropped there, even one that had no effect on stock; a delivery of a
recorded id that says something else is refused as a conflict, for the dead-letter topic);
take the append lock, which makes positions commit in order (the relay never skips a row), and
fold the new events with the pure rules a slice at a time into the COPY of their entries, so
that PostgreSQL writes while the rules work;
write the new state; notify the relay. Every instance takes the locks, then the claims (in event id
order), then the append lock, so none waits for another in a cycle.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from shared.db import Connection
from shared.events.codec import InputEvent

from ..domain.batch import (
    counted_moments,
    fold,
    item_keys,
    order_and_reference_keys,
    unconfirmed_cancellations,
)
from ..domain.rules import Entry
from ..domain.state import STATES, Balance, InboundState, ItemKey, LedgerState, OrderState
from .store import (
    Accepted,
    AppendResult,
    conflicts,
    first_of_each,
    refusals,
    refused_again,
)

APPEND_LOCK = 7_300_100  # one lock: appends are serialized, so positions commit in order
ORDER_LOCK, REFERENCE_LOCK, ITEM_LOCK = 7_300_101, 7_300_102, 7_300_103
NOTIFY_CHANNEL = "ledger_appended"
FOLD_SLICE = 500  # events folded at a time while their entries are being copied

# The ledger's connections read every row by key. A statement prepared while its table was tiny
# (a fresh ledger's first batches) could otherwise keep a cached generic plan that scans the
# table and compares each row with every key in the batch's array: on ledger_orders, which gains a
# row per order, a lookup took 2 to 6 s within a minute of load, until autovacuum's next analyze
# replaced the plan. With sequential scans priced out, every cached plan uses the keys' index;
# parallel workers are no help to such lookups on a busy machine.
SESSION_SETTINGS = {"enable_seqscan": "off", "max_parallel_workers_per_gather": "0"}

ENTRY_COLUMNS = (
    "entry_id",
    "source_event_id",
    "line_no",
    "sku",
    "location",
    "kind",
    *STATES,
    "occurred_at",
    "source_type",
    "reference",
    "detail",
)

# Claimed in event id order: concurrent claims of the same ids then wait for each other, and
# never deadlock. Returns the ids not claimed (recorded before): usually none, so that a batch's
# thousands of claimed ids are neither sent back nor looked up one by one.
_CLAIM = """
WITH claimed AS (
  INSERT INTO processed_events (event_id, event_type, topic, payload_hash)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[])
    AS c(event_id, event_type, topic, payload_hash)
  ORDER BY event_id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
)
SELECT k.event_id FROM unnest($1::uuid[]) AS k(event_id)
WHERE NOT EXISTS (SELECT FROM claimed c WHERE c.event_id = k.event_id)
"""
# What the events claimed before said (no hash: recorded before hashes were kept), and whether
# a rule refused them
_RECORDED = """
SELECT p.event_id, p.payload_hash, r.reason, r.detail
FROM processed_events p LEFT JOIN ledger_refusals r USING (event_id)
WHERE p.event_id = ANY($1::uuid[])
"""
_REFUSE = """
INSERT INTO ledger_refusals (event_id, reason, detail)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""
_LOCK = "SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int[]) AS k"
_LOAD_ORDERS = "SELECT order_id, state FROM ledger_orders WHERE order_id = ANY($1::text[])"
_LOAD_INBOUND = "SELECT reference, state FROM ledger_inbound WHERE reference = ANY($1::text[])"
# The items of requests the replenisher raised (column-level grant, see migration 0010).
_REQUEST_ITEMS = """
SELECT request_id, sku, location FROM replenishment_requests WHERE request_id = ANY($1::text[])
"""
_LOAD_BALANCES = """
SELECT b.sku, b.location, b.on_hand, b.committed, b.damaged, b.quality_control, b.incoming,
       b.written_off, b.counted_at
FROM ledger_balances b JOIN unnest($1::text[], $2::text[]) AS k(sku, location)
  ON b.sku = k.sku AND b.location = k.location
"""
# Per count in a batch (item and time), the on_hand its item's recorded entries moved after it:
# the count applies to on_hand as it stood then.
_ON_HAND_AFTER = """
SELECT (SELECT coalesce(sum(e.on_hand), 0)::bigint FROM ledger_entries e
        WHERE e.sku = k.sku AND e.location = k.location AND e.occurred_at > k.at)
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS k(sku, location, at, n)
ORDER BY k.n
"""
_UPDATE_BALANCES = """
UPDATE ledger_balances b SET
  on_hand = u.on_hand, committed = u.committed, damaged = u.damaged,
  quality_control = u.quality_control, incoming = u.incoming, written_off = u.written_off,
  counted_at = u.counted_at
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::timestamptz[])
  AS u(sku, location, on_hand, committed, damaged, quality_control, incoming, written_off,
       counted_at)
WHERE b.sku = u.sku AND b.location = u.location
"""
_UPDATE_ORDERS = """
UPDATE ledger_orders o SET state = u.state
FROM unnest($1::text[], $2::json[]) AS u(order_id, state) WHERE o.order_id = u.order_id
"""
_SAVE_INBOUND = """
INSERT INTO ledger_inbound (reference, state) SELECT * FROM unnest($1::text[], $2::json[])
ON CONFLICT (reference) DO UPDATE SET state = EXCLUDED.state
"""


def lock_ids(keys: Iterable[str]) -> list[int]:
    """Stable 32-bit lock ids, sorted: every instance takes them in the same order."""
    return sorted({zlib.crc32(k.encode()) - 2**31 for k in keys})


def _item_name(key: ItemKey) -> str:
    return f"{key[1]}|{key[0]}"


def _entry_record(e: Entry) -> tuple[object, ...]:
    d = e.deltas
    return (
        e.entry_id,
        e.source_event_id,
        e.line_no,
        e.sku,
        e.location,
        e.kind,
        d.get("on_hand", 0),
        d.get("committed", 0),
        d.get("damaged", 0),
        d.get("quality_control", 0),
        d.get("incoming", 0),
        e.occurred_at,
        e.source_type,
        e.reference,
        None if e.detail is None else orjson.dumps(e.detail).decode(),
    )


assert ENTRY_COLUMNS[6:11] == STATES  # the order _entry_record writes them in


@dataclass(frozen=True)
class Loaded:
    """The keys whose rows a batch found in the database (the rest are new)."""

    balances: set[ItemKey]
    orders: set[str]


def _claim_columns(unique: list[tuple[Accepted, bytes]]) -> list[list[Any]]:
    """The claims' columns for ``_CLAIM``."""
    return [
        [a.event.event_id for a, _ in unique],
        [a.event.type for a, _ in unique],
        [a.topic for a, _ in unique],
        [digest for _, digest in unique],
    ]


async def _lock(conn: Connection, space: int, keys: Iterable[str]) -> None:
    ids = lock_ids(keys)
    if ids:
        await conn.fetchval(_LOCK, space, ids)


class PostgresLedgerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, batch: list[Accepted]) -> AppendResult:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.append_on(conn, batch)

    async def append_on(self, conn: Connection, batch: list[Accepted]) -> AppendResult:
        """``append`` inside the caller's transaction (which must commit for it to count)."""
        unique, repeats = first_of_each(batch)
        if not unique:
            return AppendResult(0, 0, 0)
        events = [a.event for a, _ in unique]
        state, loaded = await self._load(conn, events)
        unclaimed = {r[0] for r in await conn.fetch(_CLAIM, *_claim_columns(unique))}
        # each delivery is checked against what its event id was recorded with: now, by the
        # batch's first delivery, or before
        recorded: dict[UUID, bytes | None] = {}
        if repeats:
            first = {a.event.event_id: digest for a, digest in unique}
            recorded.update(
                (i, first[i]) for i in (a.event.event_id for a, _ in repeats) if i not in unclaimed
            )
        seen = [u for u in unique if u[0].event.event_id in unclaimed] if unclaimed else []
        refused_before: dict[UUID, tuple[str, str]] = {}
        if seen:
            rows = await conn.fetch(_RECORDED, [a.event.event_id for a, _ in seen])
            recorded.update((r[0], r[1]) for r in rows)
            refused_before.update((r[0], (r[2], r[3])) for r in rows if r[2] is not None)
        refused = conflicts([*seen, *repeats], recorded)
        if refused_before:
            refused += refused_again(
                [u for u in seen if recorded.get(u[0].event.event_id) in (None, u[1])],
                refused_before,
            )
        if unclaimed:  # some were recorded before: only the others count
            events = [e for e in events if e.event_id not in unclaimed]
            if not events:
                return AppendResult(0, len(batch) - len(refused), 0, tuple(refused))
            state, loaded = await self._load(conn, events)
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", APPEND_LOCK)
        entries: list[Entry] = []

        async def folded() -> AsyncIterator[tuple[object, ...]]:
            # The events are folded a slice at a time as the COPY takes their entries, so that
            # PostgreSQL writes the first slices while the rules work out the next ones. A
            # failing rule aborts the COPY, and the transaction rolls back.
            for start in range(0, len(events), FOLD_SLICE):
                more = fold(state, events[start : start + FOLD_SLICE])
                entries.extend(more)
                for entry in more:
                    yield _entry_record(entry)

        await conn.copy_records_to_table("ledger_entries", records=folded(), columns=ENTRY_COLUMNS)
        await self._save(conn, state, loaded, {(e.sku, e.location) for e in entries})
        duplicates = len(batch) - len(events) - len(refused)
        by_rules = refusals(state, (a for a, _ in unique))
        if by_rules:
            await conn.execute(
                _REFUSE,
                [a.event.event_id for a, _, _ in by_rules],
                [reason for _, reason, _ in by_rules],
                [detail for _, _, detail in by_rules],
            )
            refused += by_rules
        if entries:
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return AppendResult(len(events), duplicates, len(entries), tuple(refused))

    async def _load(self, conn: Connection, events: list[InputEvent]) -> tuple[LedgerState, Loaded]:
        """The state the events read, and which of its rows exist already."""
        state = LedgerState()
        orders, references = order_and_reference_keys(events)
        await _lock(conn, ORDER_LOCK, orders)
        await _lock(conn, REFERENCE_LOCK, references)
        for row in await conn.fetch(_LOAD_ORDERS, list(orders)):
            state.orders[row["order_id"]] = OrderState.from_json(orjson.loads(row["state"]))
        for row in await conn.fetch(_LOAD_INBOUND, list(references)):
            state.inbound[row["reference"]] = InboundState.from_json(orjson.loads(row["state"]))
        unknown = unconfirmed_cancellations(events, state)
        if unknown:  # rare: a request cancelled before any confirmation named its item
            for row in await conn.fetch(_REQUEST_ITEMS, unknown):
                state.request_items[row[0]] = (row[1], row[2])
        keys = item_keys(events, state)
        await _lock(conn, ITEM_LOCK, map(_item_name, keys))
        skus, locations = [k[0] for k in keys], [k[1] for k in keys]
        for r in await conn.fetch(_LOAD_BALANCES, skus, locations):  # columns as in STATES
            state.balances[(r[0], r[1])] = Balance(r[2], r[3], r[4], r[5], r[6])
            if r[7]:
                state.written_off[(r[0], r[1])] = r[7]
            if r[8] is not None:
                state.counted_at[(r[0], r[1])] = r[8]
        counts = counted_moments(events)
        state.track_moves = {key for key, _ in counts}
        if counts:
            rows = await conn.fetch(
                _ON_HAND_AFTER,
                [k[0] for k, _ in counts],
                [k[1] for k, _ in counts],
                [at for _, at in counts],
            )
            for (key, at), row in zip(counts, rows, strict=True):
                state.on_hand_after[(key, at)] = row[0]
        return state, Loaded(set(state.balances), set(state.orders))

    async def _save(
        self, conn: Connection, state: LedgerState, loaded: Loaded, changed: set[ItemKey]
    ) -> None:
        # Rows that exist are updated; new ones are copied in. No other batch can insert them
        # meanwhile: their keys are locked, and a key's row was loaded if it existed.
        keys = sorted(changed & loaded.balances)
        if keys:
            rows = [state.balances[k] for k in keys]
            await conn.execute(
                _UPDATE_BALANCES,
                [k[0] for k in keys],
                [k[1] for k in keys],
                *([getattr(b, s) for b in rows] for s in STATES),
                [state.written_off.get(k, 0) for k in keys],
                [state.counted_at.get(k) for k in keys],
            )
        new = sorted(changed - loaded.balances)
        if new:
            await conn.copy_records_to_table(
                "ledger_balances",
                records=[
                    (
                        *k,
                        *(getattr(state.balances[k], s) for s in STATES),
                        state.written_off.get(k, 0),
                        state.counted_at.get(k),
                    )
                    for k in new
                ],
                columns=("sku", "location", *STATES, "written_off", "counted_at"),
            )
        ids = sorted(loaded.orders)
        if ids:
            docs = [orjson.dumps(state.orders[o].to_json()).decode() for o in ids]
            await conn.execute(_UPDATE_ORDERS, ids, docs)
        new_orders = sorted(state.orders.keys() - loaded.orders)
        if new_orders:
            await conn.copy_records_to_table(
                "ledger_orders",
                records=[(o, orjson.dumps(state.orders[o].to_json()).decode()) for o in new_orders],
                columns=("order_id", "state"),
            )
        if state.inbound:
            refs = sorted(state.inbound)
            docs = [orjson.dumps(state.inbound[r].to_json()).decode() for r in refs]
            await conn.execute(_SAVE_INBOUND, refs, docs)

    async def balances(self) -> dict[ItemKey, Balance]:
        rows = await self.pool.fetch(
            "SELECT sku, location, on_hand, committed, damaged, quality_control, incoming"
            " FROM ledger_balances"
        )
        result = {(r["sku"], r["location"]): Balance(*(r[s] for s in STATES)) for r in rows}
        return {k: v for k, v in result.items() if v != Balance()}
