"""A batch fetched partition by partition is decided on in the ledger's order, so a planning pass
falls due only once every entry of its day before it has been decided on."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.replenisher.app import EventClock, in_event_time, in_ledger_order

START = date(2011, 3, 1)


def entry(position: int, sku: str, day: int) -> dict[str, Any]:
    return {
        "position": position,
        "sku": sku,
        "location": "UK",
        "occurred_at": f"{START + timedelta(days=day)}T10:00:00Z",
    }


async def decided_before_each_pass(entries: list[dict[str, Any]]) -> list[tuple[date, list[int]]]:
    decided: list[int] = []
    passes: list[tuple[date, list[int]]] = []

    async def decide(part: list[dict[str, Any]]) -> bool:
        decided.extend(e["position"] for e in part)
        return True

    async def plan(day: date) -> bool:
        passes.append((day, list(decided)))
        return True

    assert await in_event_time(entries, EventClock(None, None, None), 7, decide, plan)
    return passes


async def test_a_batch_of_two_partitions_is_decided_on_in_position_order() -> None:
    # as a fetch hands them out while catching up: one partition's days 0 to 2, then the other's
    first = [entry(1, "MUG", 0), entry(3, "MUG", 1), entry(5, "MUG", 2)]
    second = [entry(2, "JUG", 0), entry(4, "JUG", 1), entry(6, "JUG", 1)]
    passes = await decided_before_each_pass(in_ledger_order(first + second))
    assert passes[0] == (START, [1, 2])  # the first day's entries of both partitions, in order
    # without the ordering, JUG's first day would come after the pass for it
    unordered = await decided_before_each_pass(first + second)
    assert unordered[0] == (START, [1])
