"""The backtest's reconstruction: input events rebuilt from ledger entries give the closed loop
what the original events gave it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from bench.retail import DATA, retail_events
from services.ledger.domain.rules import apply_event
from services.ledger.domain.state import LedgerState
from shared.events.codec import INPUT_EVENTS
from simulation.backtest import (
    POLICIES,
    LedgerRow,
    Options,
    backtest,
    events_from_entries,
    months_before,
    parse_policies,
    unresolved_orders,
)
from simulation.closed_loop import SimConfig, simulate
from simulation.frontier import configure, frontier_point

from .. import events as ev


def ledger_rows(events: list[dict[str, Any]], state: LedgerState | None = None) -> list[LedgerRow]:
    """The entries the ledger's rules append for the events, applied in their order."""
    state = state if state is not None else LedgerState()
    rows: list[LedgerRow] = []
    for event in events:
        for entry in apply_event(state, INPUT_EVENTS.validate_python(event)):
            d = entry.deltas
            rows.append(
                LedgerRow(
                    len(rows) + 1,
                    str(entry.source_event_id),
                    entry.line_no,
                    entry.sku,
                    entry.location,
                    entry.kind,
                    d.get("on_hand", 0),
                    d.get("committed", 0),
                    d.get("damaged", 0),
                    entry.occurred_at,
                    entry.source_type,
                    entry.reference,
                    entry.detail,
                )
            )
    return rows


def placements(events: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, int]]]:
    return {
        e["data"]["order_id"]: [(x["line_id"], x["sku"], x["qty"]) for x in e["data"]["lines"]]
        for e in events
        if e["type"] == "order.placed"
    }


def test_orders_shipments_and_cancellations_come_back_from_the_ledger_as_they_were() -> None:
    at, later = "2011-03-01T10:00:00Z", "2011-03-01T14:00:00Z"
    history = [
        ev.received("MUG", "UK", 50),  # left out: the closed loop sets its own stock
        # two lines of one item are one commitment entry; their shipments tell them apart
        ev.placed("O-1", "UK", [("1", "MUG", 3), ("2", "CUP", 1), ("3", "MUG", 5)], occurred_at=at),
        ev.placed("O-2", "UK", [("1", "MUG", 2), ("2", "CUP", 4)], occurred_at=at),
        ev.cancelled("O-2", ["2"], occurred_at="2011-03-01T11:00:00Z"),
        ev.shipped("MUG", "UK", 3, "O-1", "1", occurred_at=later),
        ev.shipped("CUP", "UK", 1, "O-1", "2", occurred_at=later),
        ev.shipped("MUG", "UK", 5, "O-1", "3", occurred_at=later),
        ev.shipped("MUG", "UK", 2, "O-2", "1", occurred_at=later),
    ]
    rebuilt = events_from_entries(ledger_rows(history))
    assert [e["type"] for e in rebuilt] == [
        "order.placed",
        "order.placed",
        "order.cancelled",
        *["scan.shipped"] * 4,
    ]
    assert placements(rebuilt) == {
        "O-1": [("1", "MUG", 3), ("3", "MUG", 5), ("2", "CUP", 1)],
        "O-2": [("1", "MUG", 2), ("2", "CUP", 4)],
    }
    assert rebuilt[2]["data"] == {"order_id": "O-2", "lines": [{"line_id": "2"}]}
    originals = {e["event_id"]: e for e in history}
    for e in rebuilt[2:]:
        assert e["data"].items() <= originals[e["event_id"]]["data"].items()
        assert e["occurred_at"] == originals[e["event_id"]]["occurred_at"]


def test_lines_of_one_item_cancelled_together_are_told_apart_by_the_order_state() -> None:
    at = "2011-03-01T10:00:00Z"
    history = [
        ev.placed("O-1", "UK", [("1", "MUG", 3), ("2", "MUG", 5), ("3", "CUP", 1)], occurred_at=at),
        ev.cancelled("O-1", ["1", "2"], occurred_at="2011-03-01T11:00:00Z"),
        ev.shipped("CUP", "UK", 1, "O-1", "3", occurred_at="2011-03-01T14:00:00Z"),
    ]
    state = LedgerState()
    rows = ledger_rows(history, state)
    # the entries alone: one commitment and one release of 8 MUG, naming line 2
    assert placements(events_from_entries(rows))["O-1"] == [("2", "MUG", 8), ("3", "CUP", 1)]
    assert unresolved_orders(rows) == {"O-1"}
    hints = {
        "O-1": {
            line_id: (line.sku, line.location, line.ordered, line.cancelled)
            for line_id, line in state.orders["O-1"].lines.items()
        }
    }
    rebuilt = events_from_entries(rows, hints)
    assert placements(rebuilt)["O-1"] == [("1", "MUG", 3), ("2", "MUG", 5), ("3", "CUP", 1)]
    assert rebuilt[1]["data"] == {"order_id": "O-1", "lines": [{"line_id": "1"}, {"line_id": "2"}]}


def test_lines_the_ledger_saw_shipped_before_their_placement_join_it() -> None:
    at = "2011-03-01T10:00:00Z"
    arrived = [  # the shipment of line 2 reached the ledger first
        ev.shipped("CUP", "UK", 4, "O-1", "2", occurred_at="2011-03-01T14:00:00Z"),
        ev.placed("O-1", "UK", [("1", "MUG", 3), ("2", "CUP", 4)], occurred_at=at),
        ev.shipped("MUG", "UK", 3, "O-1", "1", occurred_at="2011-03-01T14:00:00Z"),
    ]
    rebuilt = events_from_entries(ledger_rows(arrived))
    assert placements(rebuilt) == {"O-1": [("1", "MUG", 3), ("2", "CUP", 4)]}
    assert [(e["type"], e["occurred_at"]) for e in rebuilt] == [
        ("order.placed", at),
        ("scan.shipped", "2011-03-01T14:00:00Z"),
        ("scan.shipped", "2011-03-01T14:00:00Z"),
    ]


def test_write_offs_come_back_with_their_reason_and_units() -> None:
    history = [
        ev.placed("O-1", "UK", [("1", "MUG", 3)], occurred_at="2011-03-01T10:00:00Z"),
        ev.adjusted("MUG", "UK", 4, "damaged", occurred_at="2011-03-01T11:00:00Z"),
        ev.adjusted("MUG", "UK", 2, "lost", occurred_at="2011-03-01T12:00:00Z"),
    ]
    rebuilt = events_from_entries(ledger_rows(history))
    assert [(e["data"]["reason"], e["data"]["qty"]) for e in rebuilt[1:]] == [
        ("damaged", 4),
        ("lost", 2),
    ]


def test_shipments_of_orders_placed_before_the_range_are_left_out() -> None:
    history = [
        ev.placed("O-1", "UK", [("1", "MUG", 3)], occurred_at="2011-03-01T10:00:00Z"),
        ev.placed("O-2", "UK", [("1", "MUG", 1)], occurred_at="2011-03-02T10:00:00Z"),
        ev.shipped("MUG", "UK", 3, "O-1", "1", occurred_at="2011-03-02T11:00:00Z"),
        ev.shipped("MUG", "UK", 1, "O-2", "1", occurred_at="2011-03-02T12:00:00Z"),
    ]
    since = datetime(2011, 3, 2, tzinfo=UTC)
    rows = [r for r in ledger_rows(history) if r.occurred_at >= since]
    rebuilt = events_from_entries(rows)
    assert [(e["type"], e["data"]["order_id"]) for e in rebuilt] == [
        ("order.placed", "O-2"),
        ("scan.shipped", "O-2"),
    ]


def test_the_closed_loop_on_the_rebuilt_history_equals_it_on_the_history() -> None:
    events = [orjson.loads(v) for _, _, v in retail_events(DATA, rows=1500)]
    rebuilt = events_from_entries(ledger_rows(events))  # no order state needed here
    assert placements(rebuilt).keys() == placements(events).keys()
    for order_id, lines in placements(events).items():
        assert sorted(placements(rebuilt)[order_id]) == sorted(lines)
    for policy in POLICIES:
        config = SimConfig(policy)
        assert simulate(rebuilt, config).summary() == simulate(events, config).summary()


def test_months_before_keeps_the_day_or_takes_the_month_s_last() -> None:
    assert months_before(datetime(2011, 6, 15, 8, tzinfo=UTC), 3) == datetime(
        2011, 3, 15, 8, tzinfo=UTC
    )
    assert months_before(datetime(2011, 3, 31, tzinfo=UTC), 1) == datetime(2011, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2011, 1, 10, tzinfo=UTC), 2) == datetime(2010, 11, 10, tzinfo=UTC)


def test_policies_are_named_repeatedly_or_in_comma_lists() -> None:
    assert parse_policies(None) == POLICIES
    assert parse_policies(["lines,static", "min_max", "lines"]) == ("lines", "static", "min_max")
    with pytest.raises(ValueError, match="unknown policy forecast"):
        parse_policies(["forecast"])


def test_backorders_reach_the_closed_loop_and_are_recorded_in_the_json(tmp_path: Path) -> None:
    """``--backorders`` runs the closed loop as ``simulate --backorders`` runs it: every line is
    taken, so a short one's shipment empties the shelf for the lines behind it (fewer lines
    filled, more stockout item-days than with lost sales, the same lines ordered)."""
    events = [orjson.loads(v) for _, _, v in retail_events(DATA, rows=1500)]
    rebuilt = events_from_entries(ledger_rows(events))

    def reader(dsn: str, months: int | None, console: Console) -> tuple[Any, None]:
        return rebuilt, None

    def run(backorders: bool, point: bool) -> dict[str, Any]:
        options = Options(
            policies=("static", "lines"),
            point=point,
            split_months=0,
            jobs=1,
            json_path=tmp_path / "backtest.json",
            plot=tmp_path / "backtest.png",
            backorders=backorders,
        )
        written = backtest("unused", options, Console(quiet=True), reader)
        assert orjson.loads(options.json_path.read_bytes()) == orjson.loads(orjson.dumps(written))
        return written

    lost, taken = run(False, point=True), run(True, point=True)
    assert lost["options"]["backorders"] == "False"
    assert taken["options"]["backorders"] == "True"
    for before, after in zip(lost["results"], taken["results"], strict=True):
        policy = after["policy"]
        assert after == simulate(events, SimConfig(policy, backorders=True)).summary()
        assert before == simulate(events, SimConfig(policy)).summary()
        assert after["order_lines"] == before["order_lines"]
        assert after["lines_filled"] < before["lines_filled"]
        assert after["stockout_item_days"] > before["stockout_item_days"]

    swept = run(True, point=False)
    assert swept["options"]["backorders"] == "True"
    first = swept["points"][0]
    config = configure(SimConfig(backorders=True), first["policy"], first["setting"])
    assert first == orjson.loads(orjson.dumps(frontier_point(config, simulate(events, config))))
