"""A part of the catalogue: disjoint parts that together give back the whole history."""

from __future__ import annotations

from typing import Any

import pytest

from simulation.closed_loop import SimConfig, simulate
from simulation.sample import in_part, parse_part, sku_part

from .. import events as ev

SKUS = [f"SKU{n}" for n in range(40)]


def history() -> list[dict[str, Any]]:
    out = [ev.received(sku, "UK", 50) for sku in SKUS]
    for n in range(30):
        at = f"2011-03-{1 + n % 28:02d}T10:00:00Z"
        lines = [(str(i + 1), SKUS[(n + 7 * i) % len(SKUS)], 1 + i) for i in range(3)]
        order = f"O{n}"
        out.append(ev.placed(order, "UK", lines, occurred_at=at))
        out.append(ev.shipped(lines[0][1], "UK", 1, order, "1", occurred_at=at))
        if n % 3 == 0:
            out.append(ev.cancelled(order, ["2", "3"], occurred_at=at))
        if n % 7 == 0:
            out.append(ev.cancelled(order, occurred_at=at))
    return out


def skus_of(event: dict[str, Any], lines_of: dict[tuple[str, str], str]) -> set[str]:
    data = event["data"]
    if data.get("lines") and "sku" in data["lines"][0]:
        return {line["sku"] for line in data["lines"]}
    if event["type"] == "order.cancelled":
        ids = [line["line_id"] for line in data.get("lines") or []]
        return {lines_of[(data["order_id"], i)] for i in ids}
    return {data["sku"]}


def test_parts_are_disjoint_keep_only_their_skus_and_add_up_to_the_whole() -> None:
    events = history()
    lines_of = {
        (e["data"]["order_id"], line["line_id"]): line["sku"]
        for e in events
        if e["type"] == "order.placed"
        for line in e["data"]["lines"]
    }
    parts = [list(sku_part(events, (k, 3))) for k in range(3)]
    seen: list[set[str]] = []
    for k, part in enumerate(parts):
        skus: set[str] = set()
        for event in part:
            skus |= skus_of(event, lines_of)
        assert skus
        assert all(in_part(sku, (k, 3)) for sku in skus)
        seen.append(skus)
    assert set.union(*seen) == set(SKUS)
    assert sum(len(s) for s in seen) == len(SKUS)  # disjoint
    placed = [len(e["data"]["lines"]) for p in parts for e in p if e["type"] == "order.placed"]
    assert sum(placed) == 90  # every line of the history in exactly one part
    partial = [
        line["line_id"]
        for p in parts
        for e in p
        if e["type"] == "order.cancelled" and e["data"].get("lines") is not None
        for line in e["data"]["lines"]
    ]
    assert len(partial) == 10 * 2  # each cancelled line once, in its own sku's part
    # a whole order's cancellation goes to every part that kept some line of the order
    for k, part in enumerate(parts):
        kept = {e["data"]["order_id"] for e in part if e["type"] == "order.placed"}
        whole = [
            e["data"]["order_id"]
            for e in part
            if e["type"] == "order.cancelled" and e["data"].get("lines") is None
        ]
        expected = [f"O{n}" for n in range(0, 30, 7) if f"O{n}" in kept]
        assert whole == expected, k


def test_one_part_is_the_whole_and_a_part_runs_in_the_closed_loop() -> None:
    events = history()
    assert list(sku_part(events, (0, 1))) == events
    result = simulate(list(sku_part(events, (1, 2))), SimConfig("min_max"))
    assert 0 < result.order_lines < 90


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "0/0", "-1/2"])
def test_a_malformed_part_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_part(text)


def test_parts_are_stable_across_runs_and_machines() -> None:
    # CRC-32 of the sku: 2866981273, 2755545727, 203640050, 1018342131
    assert [in_part(sku, (0, 2)) for sku in ("85123A", "71053", "22752", "84029G")] == [
        False,
        False,
        True,
        False,
    ]
    assert [in_part(sku, (1, 3)) for sku in ("85123A", "71053", "22752", "84029G")] == [
        2866981273 % 3 == 1,
        2755545727 % 3 == 1,
        203640050 % 3 == 1,
        1018342131 % 3 == 1,
    ]
