"""The replenisher's state in PostgreSQL, changed batch by batch in one transaction.

Per batch of ledger entries: the items' levels move (each entry once, by position); units
ordered are added to the daily demand; requests follow their confirmations, receipts and
cancellations; then each item the batch touched is decided on, and a request it needs is
written to ``replenishment_requests``, the outbox that :mod:`.outbox` publishes. Decisions and
the input position commit together, so a redelivered batch decides nothing twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from shared.db import Connection, add_changes, lock_items
from shared.levels import ItemKey, fresh_entries, summed

from ..forecast import Forecast
from ..policy import Decision, Policy, Source, decide, figures_for, order_quantity

REQUEST_NAMESPACE = uuid.UUID("0d9c1c8a-3b59-4c55-8a4e-4f3b8e0f7a21")
NOTIFY_CHANNEL = "replenishment_requested"
SOURCE = "stockledger/replenisher"


# Each item's level, policy and forecast, and the units requested but not yet confirmed.
_ITEMS = """
SELECT i.sku, i.location, i.on_hand - i.committed - i.damaged - i.quality_control AS available,
       i.incoming, i.requests_made, p.policy, f.method, f.daily_demand, f.demand_sd,
       f.holdout_mae, f.history_days, f.demand_size,
       (SELECT coalesce(sum(r.qty), 0) FROM replenishment_requests r
         WHERE r.sku = i.sku AND r.location = i.location AND r.status = 'open') AS requested
FROM replenisher_items i
LEFT JOIN replenishment_policies p USING (sku, location)
LEFT JOIN replenishment_forecasts f USING (sku, location)
"""


def request_ids(sku: str, location: str, number: int) -> tuple[str, uuid.UUID]:
    """The n-th request of an item: the same on every replay of the same history."""
    key = uuid.uuid5(REQUEST_NAMESPACE, f"{location}|{sku}|{number}")
    return f"RQ-{key}", uuid.uuid5(REQUEST_NAMESPACE, f"event/{key}")


def _day(occurred_at: str) -> str:
    return occurred_at[:10]


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def forecast_of(row: Mapping[str, Any] | asyncpg.Record) -> Forecast | None:
    if row["method"] is None:
        return None
    return Forecast(
        row["method"],
        row["daily_demand"],
        row["demand_sd"],
        row["holdout_mae"],
        row["history_days"],
        row["demand_size"],
    )


class ReplenisherStore:
    def __init__(self, pool: asyncpg.Pool, default_policy: Policy | None = None) -> None:
        self.pool = pool
        self.default_policy = default_policy or Policy()

    def policy_of(self, row: Mapping[str, Any]) -> Policy:
        raw = row["policy"]
        return Policy.model_validate_json(raw) if raw else self.default_policy

    async def apply(self, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Apply a batch; returns the requests it raised."""
        keys = sorted({(e["sku"], e["location"]) for e in entries})
        async with self.pool.acquire() as conn, conn.transaction():
            applied = await lock_items(conn, "replenisher_items", keys)
            fresh = fresh_entries(entries, applied)
            if not fresh:
                return []
            await add_changes(conn, "replenisher_items", summed(fresh))
            await self._add_demand(conn, fresh)
            await self._follow_requests(conn, fresh)
            last_event = {(e["sku"], e["location"]): e["occurred_at"] for e in fresh}
            raised = await self._decide(conn, sorted(last_event), last_event)
            if raised:
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return raised

    async def _add_demand(self, conn: Connection, fresh: list[Mapping[str, Any]]) -> None:
        demand: dict[tuple[str, str, str], int] = defaultdict(int)
        for e in fresh:
            ordered = e["deltas"].get("committed", 0)
            if e["kind"] == "commitment" and ordered > 0:
                demand[(e["sku"], e["location"], _day(e["occurred_at"]))] += ordered
        if not demand:
            return
        rows = sorted(demand)
        await conn.execute(
            "INSERT INTO demand_daily (sku, location, day, units)"
            " SELECT s, l, d::date, u FROM unnest($1::text[], $2::text[], $3::text[],"
            " $4::bigint[]) AS t(s, l, d, u)"
            " ON CONFLICT (sku, location, day) DO UPDATE"
            " SET units = demand_daily.units + EXCLUDED.units",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [demand[r] for r in rows],
        )

    async def _follow_requests(self, conn: Connection, fresh: list[Mapping[str, Any]]) -> None:
        """Confirmations, receipts and cancellations move the requests they name."""
        moves = [e for e in fresh if str(e.get("reference", "")).startswith("RQ-")]
        if not moves:
            return
        rows = await conn.fetch(
            "SELECT request_id, qty, status, confirmed_qty, received_qty FROM"
            " replenishment_requests WHERE request_id = ANY($1::text[]) ORDER BY request_id"
            " FOR UPDATE",
            sorted({e["reference"] for e in moves}),
        )
        requests = {r["request_id"]: dict(r) for r in rows}
        for e in moves:
            request = requests.get(e["reference"])
            if request is None:
                continue
            d = e["deltas"]
            # A transfer raised by a request is sent with transfer_id = request_id: its units
            # coming in at the destination are its confirmation (the source's units leaving
            # are not), and their receipt is its receipt.
            if e["kind"] in ("replenishment_confirmed", "transfer_in"):
                request["confirmed_qty"] += max(0, d.get("incoming", 0))
                if request["status"] == "open":
                    request["status"] = "confirmed"
            elif e["kind"] == "replenishment_cancelled":
                request["status"] = "cancelled"
            elif e["kind"] == "receipt":
                request["received_qty"] += max(0, d.get("on_hand", 0))
                expected = request["confirmed_qty"] or request["qty"]
                if request["received_qty"] >= expected and request["status"] != "cancelled":
                    request["status"] = "received"
        await conn.executemany(
            "UPDATE replenishment_requests SET status = $2, confirmed_qty = $3,"
            " received_qty = $4 WHERE request_id = $1",
            [
                (r["request_id"], r["status"], r["confirmed_qty"], r["received_qty"])
                for r in requests.values()
            ],
        )

    async def _decide(
        self, conn: Connection, touched: list[ItemKey], last_event: dict[ItemKey, str]
    ) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            _ITEMS
            + " JOIN unnest($1::text[], $2::text[]) AS k(sku, location) USING (sku, location)",
            [k[0] for k in touched],
            [k[1] for k in touched],
        )
        items = {(r["sku"], r["location"]): r for r in rows}
        policies = {k: self.policy_of(r) for k, r in items.items()}
        figures = {k: figures_for(policies[k], forecast_of(r)) for k, r in items.items()}
        positions = {
            k: int(r["available"] + r["incoming"] + r["requested"]) for k, r in items.items()
        }
        # Whether a request is due does not depend on the other locations, which only choose
        # between a transfer and a purchase: they are read for the few items that need one.
        due = [
            k
            for k in touched
            if (f := figures[k]) is not None and order_quantity(policies[k], f, positions[k]) > 0
        ]
        if not due:
            return []
        sources = await self._sources(conn, due)
        raised = []
        for key in due:
            item_figures = figures[key]
            assert item_figures is not None
            decision = decide(policies[key], item_figures, positions[key], sources[key])
            assert decision is not None
            message = await self._raise(
                conn,
                key,
                items[key]["requests_made"] + 1,
                policies[key],
                decision,
                positions[key],
                last_event[key],
            )
            raised.append(message)
        return raised

    async def _sources(self, conn: Connection, due: list[ItemKey]) -> dict[ItemKey, list[Source]]:
        """The other locations of each item's sku, that could send it a transfer."""
        rows = await conn.fetch(
            _ITEMS + " WHERE i.sku = ANY($1::text[])", sorted({k[0] for k in due})
        )
        by_sku: dict[str, list[Source]] = defaultdict(list)
        for r in rows:
            item_figures = figures_for(self.policy_of(r), forecast_of(r))
            by_sku[r["sku"]].append(Source(r["location"], int(r["available"]), item_figures))
        return {k: [s for s in by_sku[k[0]] if s.location != k[1]] for k in due}

    async def _raise(
        self,
        conn: Connection,
        key: ItemKey,
        number: int,
        policy: Policy,
        decision: Decision,
        position: int,
        occurred_at: str,
    ) -> dict[str, Any]:
        sku, location = key
        request_id, event_id = request_ids(sku, location, number)
        at = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
        needed_by = at + timedelta(days=policy.lead_time_days)
        f = decision.figures
        reason = {
            "inventory_position": position,
            "reorder_point": round(f.reorder_point, 3),
            "safety_stock": round(f.safety_stock, 3),
            "daily_demand": round(f.daily_demand, 4),
            "lead_time_days": policy.lead_time_days,
            "policy": policy.policy,
        }
        data: dict[str, Any] = {
            "request_id": request_id,
            "sku": sku,
            "location": location,
            "qty": decision.qty,
            "kind": decision.kind,
            "needed_by": _rfc3339(needed_by),
            "reason": reason,
        }
        if decision.from_location is not None:
            data["from_location"] = decision.from_location
        message = {
            "event_id": str(event_id),
            "type": "replenishment.requested",
            "schema_version": 1,
            "occurred_at": _rfc3339(at),
            "source": SOURCE,
            "data": data,
        }
        await conn.execute(
            "INSERT INTO replenishment_requests (request_id, event_id, sku, location, qty, kind,"
            " from_location, needed_by, reason, message) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            request_id,
            event_id,
            sku,
            location,
            decision.qty,
            decision.kind,
            decision.from_location,
            needed_by,
            orjson.dumps(reason).decode(),
            orjson.dumps(message).decode(),
        )
        await conn.execute(
            "UPDATE replenisher_items SET requests_made = $3 WHERE sku = $1 AND location = $2",
            sku,
            location,
            number,
        )
        return message
