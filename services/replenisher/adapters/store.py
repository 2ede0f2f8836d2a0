"""The replenisher's state in PostgreSQL, changed batch by batch in one transaction.

Per batch of ledger entries: the items' levels move (each entry once, by position); units
ordered are added to the daily demand; requests follow their confirmations, receipts and
cancellations; then each item the batch touched is decided on, and a request it needs is
written to ``replenishment_requests``, the outbox that :mod:`.outbox` publishes. Decisions and
the input position commit together, so a redelivered batch decides nothing twice.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson

from shared.db import Connection, lock_items
from shared.levels import ItemKey, fresh_entries, summed

from ..forecast import Forecast
from ..lines import LineFigures, LineSettings
from ..planning import PLAN_COLUMNS, PlannerState, plan_new_items, plan_of, planner_state
from ..policy import (
    Decision,
    Figures,
    Policy,
    Source,
    decide,
    figures_for,
    line_figures,
    order_quantity,
)
from ..postpone import Postponed, outsized

REQUEST_NAMESPACE = uuid.UUID("0d9c1c8a-3b59-4c55-8a4e-4f3b8e0f7a21")
NOTIFY_CHANNEL = "replenishment_requested"
SOURCE = "stockledger/replenisher"


# Each item's level, policy and forecast, and the units requested but not yet confirmed.
_ITEM_COLUMNS = f"""
i.sku, i.location, i.on_hand - i.committed - i.damaged - i.quality_control AS available,
       i.incoming, i.requests_made, p.policy, f.method, f.daily_demand, f.demand_sd,
       f.holdout_mae, f.history_days, f.demand_size, {PLAN_COLUMNS},
       (SELECT coalesce(sum(r.qty), 0) FROM replenishment_requests r
         WHERE r.sku = i.sku AND r.location = i.location AND r.status = 'open') AS requested,
       (SELECT json_agg(json_build_array(h.reference, h.day, h.units))::text
          FROM replenisher_postponed h
         WHERE h.sku = i.sku AND h.location = i.location) AS postponed
"""
_ITEM_JOINS = """
LEFT JOIN replenishment_policies p USING (sku, location)
LEFT JOIN replenishment_forecasts f USING (sku, location)
LEFT JOIN replenishment_plans pl USING (sku, location)
"""

# The items of some skus, as transfers would come from them: their available units, the units
# open transfer requests ask of them, and what their figures are worked out from.
_SOURCES = f"""
SELECT i.sku, i.location, i.on_hand - i.committed - i.damaged - i.quality_control AS available,
       p.policy, f.method, f.daily_demand, f.demand_sd, f.holdout_mae, f.history_days,
       f.demand_size, {PLAN_COLUMNS},
       (SELECT coalesce(sum(t.qty), 0) FROM replenishment_requests t
         WHERE t.sku = i.sku AND t.from_location = i.location AND t.kind = 'transfer'
           AND t.status = 'open') AS promised
FROM replenisher_items i {_ITEM_JOINS}
WHERE i.sku = ANY($1::text[]) ORDER BY i.sku, i.location
"""

# A batch's summed changes added to its items' levels, and what the decision reads of them, as
# they are now, in one statement: the items changed, and those with a held line that the
# batch's last day releases ($9; lines of that day or later can only be released by a later
# batch). The items' rows are locked already (lock_items), so the statement's snapshot holds
# every request of theirs that another transaction committed.
_CHANGE_AND_READ = f"""
WITH c AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                       $6::bigint[], $7::bigint[], $8::bigint[])
    AS c(sku, location, on_hand, committed, damaged, quality_control, incoming, position)
), changed AS (
  UPDATE replenisher_items t SET
    on_hand = t.on_hand + c.on_hand, committed = t.committed + c.committed,
    damaged = t.damaged + c.damaged, quality_control = t.quality_control + c.quality_control,
    incoming = t.incoming + c.incoming, position = c.position
  FROM c WHERE t.sku = c.sku AND t.location = c.location
  RETURNING t.sku, t.location, t.on_hand, t.committed, t.damaged, t.quality_control, t.incoming,
            t.requests_made
)
SELECT {_ITEM_COLUMNS} FROM changed i {_ITEM_JOINS}
UNION ALL
SELECT {_ITEM_COLUMNS} FROM replenisher_items i {_ITEM_JOINS}
JOIN (SELECT DISTINCT sku, location FROM replenisher_postponed WHERE day < $9)
  AS k(sku, location) USING (sku, location)
WHERE NOT EXISTS (SELECT FROM c WHERE c.sku = i.sku AND c.location = i.location)
"""


# Order lines per item, day and size, and units ordered per item and day (summed from the
# lines), in one round trip.
_ADD_DEMAND = """
WITH t AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[]) AS t(s, l, d, q, n)
), lines AS (
  INSERT INTO demand_lines (sku, location, day, qty, lines)
  SELECT s, l, d::date, q, n FROM t
  ON CONFLICT (sku, location, day, qty) DO UPDATE SET lines = demand_lines.lines + EXCLUDED.lines
)
INSERT INTO demand_daily (sku, location, day, units)
SELECT s, l, d::date, sum(q::bigint * n) FROM t GROUP BY s, l, d ORDER BY s, l, d
ON CONFLICT (sku, location, day) DO UPDATE SET units = demand_daily.units + EXCLUDED.units
"""
# The requests a batch raises, in the order raised (their seq, the order the outbox publishes
# them in), and each item's count of requests made.
_INSERT_REQUESTS = """
INSERT INTO replenishment_requests (request_id, event_id, sku, location, qty, kind, from_location,
                                    needed_by, reason, message)
SELECT r, e, s, l, q, k, f, n, re, m
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
            $8::timestamptz[], $9::jsonb[], $10::jsonb[]) WITH ORDINALITY
  AS t(r, e, s, l, q, k, f, n, re, m, i)
ORDER BY i
"""
_REQUESTS_MADE = """
UPDATE replenisher_items i SET requests_made = u.made
FROM unnest($1::text[], $2::text[], $3::int[]) AS u(sku, location, made)
WHERE i.sku = u.sku AND i.location = u.location
"""


def request_ids(sku: str, location: str, number: int) -> tuple[str, uuid.UUID]:
    """The n-th request of an item: the same on every replay of the same history."""
    key = uuid.uuid5(REQUEST_NAMESPACE, f"{location}|{sku}|{number}")
    return f"RQ-{key}", uuid.uuid5(REQUEST_NAMESPACE, f"event/{key}")


def _day(occurred_at: str) -> str:
    return occurred_at[:10]


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _moves_position(entry: Mapping[str, Any], released: dict[int, int]) -> int:
    """How an entry moves its item's inventory position: available and incoming, less the
    units of a request it took out of ``open`` (they were counted as requested)."""
    d = entry["deltas"]
    moved = (
        d.get("on_hand", 0)
        - d.get("committed", 0)
        - d.get("damaged", 0)
        - d.get("quality_control", 0)
        + d.get("incoming", 0)
    )
    return int(moved - released.get(entry["position"], 0))


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


def line_settings_for(policy: Policy, target_fill: float, budget: float | None) -> LineSettings:
    return LineSettings(
        lead_time_days=policy.lead_time_days,
        review_days=policy.review_days,
        target_fill=target_fill,
        budget_units=budget,
    )


class ReplenisherStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        default_policy: Policy | None = None,
        line_settings: LineSettings | None = None,
    ) -> None:
        self.pool = pool
        self.default_policy = default_policy or Policy()
        self.line_settings = line_settings or line_settings_for(self.default_policy, 0.9, None)
        # Items that the last planning pass's state could not plan from their first line on a
        # day (no line of theirs before that day, and no early rate at their location): until
        # the state changes or a line of theirs dated earlier comes, the same first day gives
        # the same answer, and every batch that touches such an item would read its lines again.
        self._unplannable: dict[ItemKey, date] = {}
        self._unplannable_under: PlannerState | None = None

    def forget_unplannable(self) -> None:
        """Forget the unplannable items: called when the consumer's partitions change, since
        another instance may have applied an item's entries meanwhile."""
        self._unplannable.clear()

    def figures_of(self, row: Mapping[str, Any]) -> Figures | None:
        return figures_for(self.policy_of(row), forecast_of(row), plan_of(row))

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
            rows = await self._change(conn, fresh)
            await self._add_demand(conn, fresh)
            released, released_items = await self._follow_requests(conn, fresh)
            raised = await self._decide(conn, fresh, rows, released, released_items)
            if raised:
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return raised

    async def _change(
        self, conn: Connection, fresh: list[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """Add the fresh entries to their items' levels; returns what the decision reads of the
        items (``_CHANGE_AND_READ``)."""
        changed = summed(fresh)
        items = sorted(changed)
        last_day = date.fromisoformat(max(_day(e["occurred_at"]) for e in fresh))
        rows: list[Mapping[str, Any]] = await conn.fetch(
            _CHANGE_AND_READ,
            [k[0] for k in items],
            [k[1] for k in items],
            *([changed[k].deltas[i] for k in items] for i in range(5)),
            [changed[k].last_position for k in items],
            last_day,
        )
        return rows

    async def _add_demand(self, conn: Connection, fresh: list[Mapping[str, Any]]) -> None:
        """Units ordered per item and day, and order lines per item, day and size (each
        commitment of an order's line is one line of demand)."""
        lines: dict[tuple[str, str, str, int], int] = defaultdict(int)
        for e in fresh:
            ordered = e["deltas"].get("committed", 0)
            if e["kind"] == "commitment" and ordered > 0:
                lines[(e["sku"], e["location"], _day(e["occurred_at"]), ordered)] += 1
        if not lines:
            return
        keys = sorted(lines)
        await conn.execute(
            _ADD_DEMAND,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [lines[k] for k in keys],
        )

    async def _follow_requests(
        self, conn: Connection, fresh: list[Mapping[str, Any]]
    ) -> tuple[dict[int, int], dict[ItemKey, int]]:
        """Confirmations, receipts and cancellations move the requests they name. Returns, by
        the position of the entry that did it, the units of requests it took out of ``open``
        (requested but not yet confirmed: part of the inventory position until then), and the
        same units by the item of the request."""
        moves = [e for e in fresh if str(e.get("reference", "")).startswith("RQ-")]
        released: dict[int, int] = {}
        released_items: dict[ItemKey, int] = {}
        if not moves:
            return released, released_items
        rows = await conn.fetch(
            "SELECT request_id, sku, location, qty, status, confirmed_qty, received_qty FROM"
            " replenishment_requests WHERE request_id = ANY($1::text[]) ORDER BY request_id"
            " FOR UPDATE",
            sorted({e["reference"] for e in moves}),
        )
        requests = {r["request_id"]: dict(r) for r in rows}
        for e in moves:
            request = requests.get(e["reference"])
            if request is None:
                continue
            was_open = request["status"] == "open"
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
            if was_open and request["status"] != "open":
                released[e["position"]] = released.get(e["position"], 0) + request["qty"]
                item = (request["sku"], request["location"])
                released_items[item] = released_items.get(item, 0) + request["qty"]
        await conn.executemany(
            "UPDATE replenishment_requests SET status = $2, confirmed_qty = $3,"
            " received_qty = $4 WHERE request_id = $1",
            [
                (r["request_id"], r["status"], r["confirmed_qty"], r["received_qty"])
                for r in requests.values()
            ],
        )
        return released, released_items

    def _plannable(
        self,
        state: PlannerState,
        fresh: list[Mapping[str, Any]],
        firsts: dict[ItemKey, tuple[date, int]],
    ) -> dict[ItemKey, tuple[date, int]]:
        """The new items worth planning: all but those known to be unplannable on the same
        first day under the same planner state. An entry of an item dated before the day it was
        found unplannable on forgets it (a line before that day may give it a rate)."""
        if state != self._unplannable_under:
            self._unplannable.clear()
            self._unplannable_under = state
        if not self._unplannable:
            return firsts
        for e in fresh:
            key = (e["sku"], e["location"])
            day = self._unplannable.get(key)
            if day is not None and _day(e["occurred_at"]) < day.isoformat():
                del self._unplannable[key]
        return {k: f for k, f in firsts.items() if self._unplannable.get(k) != f[0]}

    async def _decide(
        self,
        conn: Connection,
        fresh: list[Mapping[str, Any]],
        rows: list[Mapping[str, Any]],
        released: dict[int, int],
        released_items: dict[ItemKey, int],
    ) -> list[dict[str, Any]]:
        """Each entry in turn, as if decided on alone: the inventory position moves by it, and
        a request is raised where it falls to the reorder point (which then counts as
        requested). So the requests do not depend on how the entries were batched: a replay at
        any speed raises the same ones, with the same ids. ``rows``: the items the batch
        touches and those with a held line it releases, as read with its changes (before its
        requests moved: ``released_items`` are the units that left ``open`` since)."""
        touched = sorted({(e["sku"], e["location"]) for e in fresh})
        days: dict[str, date] = {}

        def day_of(occurred_at: str) -> date:
            """The event-time day of a time, each day parsed once a batch."""
            text = _day(occurred_at)
            found = days.get(text)
            if found is None:
                found = days[text] = date.fromisoformat(text)
            return found

        items: dict[ItemKey, Mapping[str, Any]] = {(r["sku"], r["location"]): r for r in rows}
        postponed = Postponed(
            ((r["sku"], r["location"]), p[0], date.fromisoformat(p[1]), p[2])
            for r in rows
            if r["postponed"] is not None
            for p in orjson.loads(r["postponed"])
        )
        policies = {k: self.policy_of(r) for k, r in items.items()}
        # What each item is decided by, and the position above which nothing is due (its
        # reorder point; static and min_max: none, order_quantity tells). A lines plan's full
        # figures are built only for an item that falls to its reorder point: until then the
        # stored point is all the walk needs. Items with neither raise nothing.
        figures: dict[ItemKey, Figures] = {}
        points: dict[ItemKey, float] = {}
        for k, r in items.items():
            policy = policies[k]
            if policy.policy == "lines":
                if r["reorder_point"] is not None:
                    points[k] = r["reorder_point"]
            elif (f := figures_for(policy, forecast_of(r), plan_of(r))) is not None:
                figures[k] = f
                points[k] = f.reorder_point if policy.policy == "normal" else math.inf
        first_line: dict[ItemKey, tuple[date, int]] = {}
        for e in fresh:
            if e["kind"] == "commitment" and (qty := e["deltas"].get("committed", 0)) > 0:
                key = (e["sku"], e["location"])
                if key not in first_line:
                    first_line[key] = (day_of(e["occurred_at"]), qty)
        unplanned = [
            k
            for k in touched
            if k in items
            and k in first_line
            and policies[k].policy == "lines"
            and items[k]["reorder_point"] is None
        ]
        if unplanned:  # new since the last pass: planned now, from their first line
            state = await planner_state(conn)
            if state is not None:
                firsts = self._plannable(state, fresh, {k: first_line[k] for k in unplanned})
                planned = (
                    await plan_new_items(conn, firsts, state, self.line_settings) if firsts else {}
                )
                for k, lines in planned.items():
                    figures[k] = line_figures(lines)
                    points[k] = lines.reorder_point
                self._unplannable.update((k, firsts[k][0]) for k in firsts if k not in planned)

        def figures_of(key: ItemKey) -> Figures:
            found = figures.get(key)
            if found is None:  # a stored lines plan
                row = items[key]
                found = figures[key] = line_figures(cast(LineFigures, plan_of(row)))
            return found

        # The position before the batch, then entry by entry, for the items that have figures
        # (the others raise nothing): each entry's move is worked out once. Outsized lines
        # (:mod:`..postpone`) stay out of the position until their day is over.
        position = {
            k: int(r["available"] + r["incoming"] + r["requested"])
            - released_items.get(k, 0)
            + postponed.units(k)
            for k, r in items.items()
        }
        walk = [
            (key, _moves_position(e, released) if key in points else 0, e)
            for e in fresh
            for key in [(e["sku"], e["location"])]
        ]
        for key, moved, _ in walk:
            if key in points:
                position[key] -= moved
        due: list[tuple[ItemKey, int, int, str]] = []  # item, position, qty, at

        def consider(key: ItemKey, occurred_at: str) -> None:
            at = position[key]
            if at > points[key]:
                return
            qty = order_quantity(policies[key], figures_of(key), at)
            if qty > 0:
                due.append((key, at, qty, occurred_at))
                position[key] += qty  # requested, until confirmed

        def order_up_to(key: ItemKey) -> float:
            f = figures.get(key)
            return f.order_up_to if f is not None else float(items[key]["order_up_to"])

        for key, moved, e in walk:
            if postponed.lines:
                for over, units in postponed.due(day_of(e["occurred_at"])):
                    if over in points:
                        position[over] -= units
                        consider(over, e["occurred_at"])
            if key not in points:
                continue
            committed = e["deltas"].get("committed", 0)
            reference = e.get("reference")
            if reference is not None and committed > 0 and e["kind"] == "commitment":
                if outsized(committed, order_up_to(key)):
                    postponed.hold(key, reference, day_of(e["occurred_at"]), committed)
                    moved += committed
            elif reference is not None and committed < 0 and e["kind"] == "release":
                moved -= postponed.take_back(key, reference, -committed)
            position[key] += moved
            consider(key, e["occurred_at"])
        if postponed.changed:
            await self._keep_postponed(conn, postponed)
        if not due:
            return []
        sources = await self._sources(conn, sorted({k for k, _, _, _ in due}))
        raised: list[dict[str, Any]] = []
        requests: list[tuple[Any, ...]] = []
        made = {k: items[k]["requests_made"] for k, _, _, _ in due}
        # units of the transfers chosen so far, by the item sending them (the sku at the
        # location it leaves): its surplus is spoken for; other skus there keep theirs
        taken: dict[ItemKey, int] = {}
        for key, at_position, _, occurred_at in due:
            offered = sources[key]
            if taken:
                offered = [
                    replace(s, available=s.available - taken[(key[0], s.location)])
                    if (key[0], s.location) in taken
                    else s
                    for s in offered
                ]
            decision = decide(policies[key], figures_of(key), at_position, offered)
            assert decision is not None
            if decision.from_location is not None:
                sender = (key[0], decision.from_location)
                taken[sender] = taken.get(sender, 0) + decision.qty
            made[key] += 1
            row = _request(key, made[key], policies[key], decision, at_position, occurred_at)
            requests.append(row)
            raised.append(row[-1])
        await conn.execute(
            _INSERT_REQUESTS,
            *([row[i] for row in requests] for i in range(9)),
            [orjson.dumps(row[9]).decode() for row in requests],
        )
        items_made = sorted(made)
        await conn.execute(
            _REQUESTS_MADE,
            [k[0] for k in items_made],
            [k[1] for k in items_made],
            [made[k] for k in items_made],
        )
        return raised

    async def _keep_postponed(self, conn: Connection, postponed: Postponed) -> None:
        """The held lines of the items whose hold changed, as they stand after the batch."""
        changed = sorted(postponed.changed)
        rows = postponed.rows()
        await conn.execute(
            "DELETE FROM replenisher_postponed h USING unnest($1::text[], $2::text[])"
            " AS k(sku, location) WHERE h.sku = k.sku AND h.location = k.location",
            [k[0] for k in changed],
            [k[1] for k in changed],
        )
        if rows:
            await conn.executemany(
                "INSERT INTO replenisher_postponed (sku, location, reference, day, units)"
                " VALUES ($1, $2, $3, $4, $5)",
                rows,
            )

    async def _sources(self, conn: Connection, due: list[ItemKey]) -> dict[ItemKey, list[Source]]:
        """The other locations of each item's sku, that could send it a transfer: their
        available units less what open transfer requests already ask of them. In the order of
        their names, which settles a tie between equal surpluses the same way on every replay
        (the order PostgreSQL happens to read them in varies with its plan)."""
        rows = await conn.fetch(_SOURCES, sorted({k[0] for k in due}))
        by_sku: dict[str, list[Source]] = defaultdict(list)
        for r in rows:
            item_figures = self.figures_of(r)
            available = int(r["available"] - r["promised"])
            by_sku[r["sku"]].append(Source(r["location"], available, item_figures))
        return {k: [s for s in by_sku[k[0]] if s.location != k[1]] for k in due}


def _request(
    key: ItemKey,
    number: int,
    policy: Policy,
    decision: Decision,
    position: int,
    occurred_at: str,
) -> tuple[Any, ...]:
    """The row of the item's ``number``-th request (as ``_INSERT_REQUESTS`` takes its columns,
    the reason as JSON), and last its message."""
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
    return (
        request_id,
        event_id,
        sku,
        location,
        decision.qty,
        decision.kind,
        decision.from_location,
        needed_by,
        orjson.dumps(reason).decode(),
        message,
    )
