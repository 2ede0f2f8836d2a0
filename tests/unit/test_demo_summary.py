"""The demo's summary: the live figures beside the default policy and the ``static`` baseline
simulated on the same rows, requests shown with the transfers among them in every column."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console

from bench.retail import DATA, retail_events
from simulation.closed_loop import SimConfig, SimResult, simulate
from simulation.demo import LiveFigures, over_history_time, summary

LIVE = LiveFigures(
    published=258_375,
    lines=234_674,
    filled=190_555.3,
    fill_later=0.848,
    held_later=228_484.2,
    requests=77_279,
    transfers=3_410,
    stockouts=412,
)


def rows(
    live: LiveFigures, own: SimResult | None, baseline: SimResult | None
) -> dict[str, list[str]]:
    """The summary as printed: each figure's cells, live first."""
    out = io.StringIO()
    table = summary(live, "lines", own, baseline, date(2010, 12, 31))
    Console(file=out, width=200, color_system=None).print(table)
    cells: dict[str, list[str]] = {}
    for line in out.getvalue().splitlines():
        parts = [p.strip() for p in line.split("│")[1:-1]]
        if parts and parts[0]:
            cells[parts[0]] = parts[1:]
    return cells


def result(policy: str, requests: int, transfers: int) -> SimResult:
    daily = [
        {"day": "2010-12-30", "units_held": 10, "stockouts": 1, "lines": 4, "filled": 3},
        {"day": "2010-12-31", "units_held": 30, "stockouts": 2, "lines": 10, "filled": 8},
    ]
    for d in daily:
        d["requests"] = requests
    return SimResult(
        policy,
        days=2,
        order_lines=10,
        lines_filled=8,
        requests=requests,
        transfers=transfers,
        held_unit_days=40,
        daily=daily,
    )


def test_simulated_requests_show_their_transfers_as_the_live_ones_do() -> None:
    cells = rows(LIVE, result("lines", 66_811, 1_234), result("static", 88_641, 0))
    assert cells["requests raised (transfers)"] == [
        "77,279 (3,410)",
        "66,811 (1,234)",
        "88,641 (0)",
    ]
    assert cells["order lines"] == ["234,674", "10", "10"]
    assert cells["line fill rate"] == ["0.812", "0.800", "0.800"]
    assert cells["line fill rate after the first month"] == ["0.848", "0.833", "0.833"]
    assert cells["average units on hand after the first month"] == ["228,484", "30", "30"]
    assert cells["stockouts now"] == ["412", "", ""]


def test_the_transfers_shown_are_those_the_closed_loop_counted() -> None:
    events = [orjson.loads(v) for _, _, v in retail_events(DATA, rows=1500)]
    static = simulate(events, SimConfig("static", lead_time_days=5, review_days=3))
    assert static.transfers > 0
    cells = rows(LIVE, None, static)
    assert cells["requests raised (transfers)"] == [
        "77,279 (3,410)",
        "",
        f"{static.requests:,} ({static.transfers:,})",
    ]


def test_an_interrupted_demo_leaves_the_simulated_columns_empty() -> None:
    cells = rows(LIVE, None, None)
    assert cells["requests raised (transfers)"] == ["77,279 (3,410)", "", ""]
    assert cells["line fill rate"] == ["0.812", "", ""]


def test_units_on_hand_are_averaged_over_history_time_not_over_samples() -> None:
    day = datetime(2011, 1, 1, tzinfo=UTC)

    def at(days: float, held: int) -> dict[str, Any]:
        # held as the monitor reads it: PostgreSQL's sum of integers, a numeric
        return {"clock": day + timedelta(days=days), "held": Decimal(held)}

    even = [at(d, 100 + d) for d in range(10)]
    # the same history, with the clock waiting twice: at day 3, and at the end while the suite
    # settles, samples pile up at one moment of history time
    waits = [*even[:4], *[at(3, 103)] * 50, *even[4:], *[at(9, 5_000)] * 100]
    assert over_history_time(even) == over_history_time(waits) == sum(range(100, 109)) / 9
    assert over_history_time([at(2, 7), at(2, 9)]) == 8.0  # no history time: the plain mean
    assert over_history_time([]) is None
