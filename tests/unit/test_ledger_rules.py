"""The contract's input tables, row by row, against the ledger's pure rules (no server)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from services.ledger.domain.rules import ENTRY_NAMESPACE, Entry, apply_event
from services.ledger.domain.state import Balance, LedgerState, OrderState

from .. import events as ev

A, UK, EU = "MUG-RED", "UK", "EU"


def run(
    *events: dict[str, Any], state: LedgerState | None = None
) -> tuple[LedgerState, list[Entry]]:
    state = state or LedgerState()
    entries: list[Entry] = []
    for event in events:
        entries.extend(apply_event(state, ev.parse(event)))
    return state, entries


def level(state: LedgerState, sku: str = A, location: str = UK) -> Balance:
    return state.balances.get((sku, location), Balance())


def test_a_receipt_adds_to_on_hand() -> None:
    state, entries = run(ev.received(A, UK, 10))
    assert level(state) == Balance(on_hand=10)
    assert [(e.kind, e.deltas) for e in entries] == [("receipt", {"on_hand": 10})]


def test_a_receipt_against_an_open_request_reduces_incoming_but_never_below_zero() -> None:
    state, _ = run(ev.confirmed("R1", A, UK, 10), ev.received(A, UK, 4, reference="R1"))
    assert level(state) == Balance(on_hand=4, incoming=6)
    state, _ = run(ev.received(A, UK, 9, reference="R1"), state=state)
    assert level(state) == Balance(on_hand=13, incoming=0)


def test_a_confirmation_records_its_expected_time_in_utc_whatever_offset_it_was_sent_with() -> None:
    confirmation = ev.confirmed("R1", A, UK, 10)
    confirmation["data"]["expected_at"] = "2011-07-04T09:30:00+02:00"
    _, entries = run(confirmation)
    assert [e.detail for e in entries] == [{"expected_at": "2011-07-04T07:30:00+00:00"}]


def test_a_receipt_with_an_unknown_reference_only_adds_to_on_hand() -> None:
    state, _ = run(ev.received(A, UK, 5, reference="PO-123"))
    assert level(state) == Balance(on_hand=5)


def test_a_receipt_that_arrives_before_its_confirmation_is_not_expected_again() -> None:
    state, _ = run(ev.received(A, UK, 4, reference="R1"), ev.confirmed("R1", A, UK, 10))
    assert level(state) == Balance(on_hand=4, incoming=6)


def test_a_shipment_takes_from_on_hand_and_from_the_line_commitment() -> None:
    state, entries = run(
        ev.received(A, UK, 10),
        ev.placed("O1", UK, [("1", A, 3)]),
        ev.shipped(A, UK, 3, "O1", "1"),
    )
    assert level(state) == Balance(on_hand=7, committed=0)
    assert entries[-1].deltas == {"on_hand": -3, "committed": -3}
    assert entries[-1].reference == "O1"


def test_fulfilment_of_units_already_scanned_as_shipped_changes_nothing() -> None:
    state, entries = run(
        ev.received(A, UK, 10),
        ev.placed("O1", UK, [("1", A, 3)]),
        ev.shipped(A, UK, 3, "O1", "1"),
        ev.fulfilled("O1", UK, [("1", A, 3)]),
    )
    assert level(state) == Balance(on_hand=7)
    assert len(entries) == 3


def test_a_scan_after_fulfilment_of_the_same_units_changes_nothing() -> None:
    state, _ = run(
        ev.placed("O1", UK, [("1", A, 3)]),
        ev.fulfilled("O1", UK, [("1", A, 3)]),
        ev.shipped(A, UK, 3, "O1", "1"),
    )
    assert level(state) == Balance(on_hand=-3, committed=0)


def test_partial_shipments_release_the_commitment_unit_by_unit() -> None:
    state, _ = run(
        ev.received(A, UK, 10),
        ev.placed("O1", UK, [("1", A, 5)]),
        ev.shipped(A, UK, 2, "O1", "1"),
    )
    assert level(state) == Balance(on_hand=8, committed=3)
    state, _ = run(ev.shipped(A, UK, 3, "O1", "1"), state=state)
    assert level(state) == Balance(on_hand=5, committed=0)


def test_a_shipment_without_a_line_id_is_matched_to_the_orders_line_for_that_sku() -> None:
    state, _ = run(
        ev.placed("O1", UK, [("1", "OTHER", 1), ("2", A, 4)]), ev.shipped(A, UK, 4, "O1")
    )
    assert level(state) == Balance(on_hand=-4, committed=0)
    assert level(state, "OTHER") == Balance(committed=1)


def test_units_shipped_before_the_order_was_placed_are_not_committed_again() -> None:
    state, _ = run(ev.shipped(A, UK, 2, "O1", "1"), ev.placed("O1", UK, [("1", A, 5)]))
    assert level(state) == Balance(on_hand=-2, committed=3)


def test_an_order_for_more_than_is_available_is_recorded_as_oversold() -> None:
    state, _ = run(ev.received(A, UK, 2), ev.placed("O1", UK, [("1", A, 5)]))
    assert level(state) == Balance(on_hand=2, committed=5)


def test_a_repeated_placement_of_the_same_line_commits_nothing_more() -> None:
    state, _ = run(ev.placed("O1", UK, [("1", A, 5)]), ev.placed("O1", UK, [("1", A, 5)]))
    assert level(state) == Balance(committed=5)


def test_cancelling_a_whole_order_releases_what_is_still_committed() -> None:
    state, _ = run(
        ev.placed("O1", UK, [("1", A, 5), ("2", "B", 2)]),
        ev.shipped(A, UK, 2, "O1", "1"),
        ev.cancelled("O1"),
    )
    assert level(state) == Balance(on_hand=-2, committed=0)
    assert level(state, "B") == Balance(committed=0)


def test_cancelling_some_lines_leaves_the_others_committed() -> None:
    state, _ = run(ev.placed("O1", UK, [("1", A, 5), ("2", "B", 2)]), ev.cancelled("O1", ["2"]))
    assert level(state) == Balance(committed=5)
    assert level(state, "B") == Balance(committed=0)


def test_a_cancellation_that_arrives_before_its_order_keeps_the_order_uncommitted() -> None:
    state, _ = run(ev.cancelled("O1"), ev.placed("O1", UK, [("1", A, 5)]))
    assert level(state) == Balance(committed=0)
    state, _ = run(ev.cancelled("O2", ["1"]), ev.placed("O2", UK, [("1", A, 5), ("2", A, 1)]))
    assert level(state) == Balance(committed=1)


def test_a_late_cancellation_after_shipment_releases_nothing_and_ships_stay_shipped() -> None:
    state, _ = run(
        ev.placed("O1", UK, [("1", A, 3)]),
        ev.shipped(A, UK, 3, "O1", "1"),
        ev.cancelled("O1"),
    )
    assert level(state) == Balance(on_hand=-3, committed=0)


@pytest.mark.parametrize(
    ("reason", "qty", "expected"),
    [
        ("found", 4, Balance(on_hand=14, damaged=1)),
        ("lost", 4, Balance(on_hand=6, damaged=1)),
        ("expired", 4, Balance(on_hand=6, damaged=1)),
        ("damaged", 4, Balance(on_hand=10, damaged=5)),
        ("write_off", 1, Balance(on_hand=9, damaged=0)),
        ("correction", -3, Balance(on_hand=7, damaged=1)),
        ("correction", 3, Balance(on_hand=13, damaged=1)),
    ],
)
def test_each_adjustment_reason_moves_its_states(reason: str, qty: int, expected: Balance) -> None:
    state, _ = run(ev.received(A, UK, 10), ev.adjusted(A, UK, 1, "damaged"))
    state, entries = run(ev.adjusted(A, UK, qty, reason), state=state)
    assert level(state) == expected
    assert entries[0].kind == "adjustment"
    assert entries[0].detail == {"reason": reason}


def test_writing_off_more_than_is_damaged_never_makes_damaged_negative() -> None:
    state, _ = run(ev.received(A, UK, 10), ev.adjusted(A, UK, 1, "damaged"))
    state, _ = run(ev.adjusted(A, UK, 3, "write_off"), state=state)
    assert level(state) == Balance(on_hand=7, damaged=0)


def test_a_count_sets_on_hand_and_records_the_difference_with_both_figures() -> None:
    state, entries = run(ev.received(A, UK, 10), ev.counted(A, UK, 7))
    assert level(state) == Balance(on_hand=7)
    assert entries[-1].kind == "count"
    assert entries[-1].deltas == {"on_hand": -3}
    assert entries[-1].detail == {"expected": 10, "counted": 7}


def test_a_count_that_matches_is_still_recorded() -> None:
    _, entries = run(ev.received(A, UK, 10), ev.counted(A, UK, 10))
    assert entries[-1].kind == "count"
    assert entries[-1].deltas == {}


def test_a_transfer_leaves_one_location_and_is_incoming_at_the_other_until_received() -> None:
    state, entries = run(ev.received(A, UK, 10), ev.transferred(A, UK, EU, 4, "T1"))
    assert level(state, A, UK) == Balance(on_hand=6)
    assert level(state, A, EU) == Balance(incoming=4)
    assert [e.kind for e in entries[1:]] == ["transfer_out", "transfer_in"]
    state, _ = run(ev.received(A, EU, 4, reference="T1"), state=state)
    assert level(state, A, EU) == Balance(on_hand=4, incoming=0)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("sellable", Balance(on_hand=2)),
        ("damaged", Balance(on_hand=2, damaged=2)),
        ("inspect", Balance(on_hand=2, quality_control=2)),
    ],
)
def test_a_return_goes_to_the_state_its_condition_says(condition: str, expected: Balance) -> None:
    state, _ = run(ev.returned(A, UK, 2, condition, order_id="O1"))
    assert level(state) == expected


def test_a_move_between_bins_is_recorded_without_changing_quantities() -> None:
    state, entries = run(ev.moved(A, UK, 3, "A-01", "B-07"))
    assert level(state) == Balance()
    assert [(e.kind, e.deltas, e.detail) for e in entries] == [
        ("move", {}, {"qty": 3, "from_bin": "A-01", "to_bin": "B-07"})
    ]


def test_a_confirmed_replenishment_is_incoming_until_cancelled() -> None:
    state, _ = run(ev.confirmed("R1", A, UK, 10), ev.received(A, UK, 3, reference="R1"))
    state, entries = run(ev.request_cancelled("R1"), state=state)
    assert level(state) == Balance(on_hand=3, incoming=0)
    assert entries[0].deltas == {"incoming": -7}


def test_a_confirmation_after_cancellation_expects_nothing() -> None:
    state, _ = run(ev.request_cancelled("R1"), ev.confirmed("R1", A, UK, 10))
    assert level(state) == Balance()


def test_a_repeated_confirmation_is_not_counted_twice() -> None:
    state, _ = run(ev.confirmed("R1", A, UK, 10), ev.confirmed("R1", A, UK, 10))
    assert level(state) == Balance(incoming=10)


def test_entry_ids_are_deterministic_per_event_and_line() -> None:
    event = ev.placed("O1", UK, [("1", A, 1), ("2", "B", 1)])
    _, first = run(event)
    _, second = run(event)
    assert [e.entry_id for e in first] == [e.entry_id for e in second]
    assert [e.line_no for e in first] == [0, 1]


def test_entry_ids_are_uuid5_of_the_namespace_the_event_id_and_the_line() -> None:
    event = ev.placed("O1", UK, [("1", A, 1), ("2", "B", 1)])
    _, entries = run(event)
    for e in entries:
        name = (
            ENTRY_NAMESPACE.bytes
            + uuid.UUID(event["event_id"]).bytes
            + e.line_no.to_bytes(4, "big")
        )
        digest = hashlib.sha1(name).digest()  # noqa: S324 - the definition of uuid5
        assert e.entry_id == uuid.UUID(bytes=digest[:16], version=5)
        assert isinstance(e.entry_id, uuid.UUID)
        assert str(e.entry_id) == str(uuid.UUID(bytes=digest[:16], version=5))


def test_two_shipments_under_one_transfer_id_are_both_incoming() -> None:
    state, _ = run(
        ev.received(A, UK, 10),
        ev.transferred(A, UK, EU, 3, "T1"),
        ev.transferred(A, UK, EU, 2, "T1"),
    )
    assert level(state, A, UK) == Balance(on_hand=5)
    assert level(state, A, EU) == Balance(incoming=5)
    state, _ = run(ev.received(A, EU, 4, reference="T1"), state=state)
    assert level(state, A, EU) == Balance(on_hand=4, incoming=1)


def test_units_shipped_without_a_line_before_the_order_was_placed_ship_once() -> None:
    state, _ = run(
        ev.received(A, UK, 10),
        ev.shipped(A, UK, 2, "O1"),
        ev.placed("O1", UK, [("1", A, 2)]),
    )
    assert level(state) == Balance(on_hand=8, committed=0)
    state, _ = run(ev.fulfilled("O1", UK, [("1", A, 2)]), state=state)
    assert level(state) == Balance(on_hand=8, committed=0)


def test_unlined_units_shipped_before_placement_fill_the_orders_lines_for_that_sku() -> None:
    state, _ = run(
        ev.received(A, UK, 10),
        ev.shipped(A, UK, 3, "O1"),
        ev.placed("O1", UK, [("1", A, 2), ("2", "B", 1), ("3", A, 4)]),
    )
    assert level(state) == Balance(on_hand=7, committed=3)
    assert level(state, "B") == Balance(committed=1)


def test_an_unlined_shipment_and_a_fulfilment_before_placement_are_the_same_units() -> None:
    events = [
        ev.received(A, UK, 10),
        ev.shipped(A, UK, 2, "O1"),
        ev.fulfilled("O1", UK, [("1", A, 2)]),
        ev.placed("O1", UK, [("1", A, 2)]),
    ]
    for order in (events, [events[0], events[2], events[1], events[3]]):
        state, _ = run(*order)
        assert level(state) == Balance(on_hand=8, committed=0)


@pytest.mark.parametrize(
    "damage", [ev.adjusted(A, UK, 3, "damaged"), ev.returned(A, UK, 3, "damaged")]
)
def test_a_write_off_and_its_damage_scan_settle_alike_in_either_order(
    damage: dict[str, Any],
) -> None:
    write_off = ev.adjusted(A, UK, 2, "write_off")
    first, _ = run(ev.received(A, UK, 10), damage, write_off)
    second, _ = run(ev.received(A, UK, 10), write_off, damage)
    assert level(first) == level(second)
    assert level(second).damaged == 1


def test_units_written_off_beyond_what_is_damaged_wait_for_their_damage_scan() -> None:
    state, _ = run(ev.received(A, UK, 10), ev.adjusted(A, UK, 5, "write_off"))
    assert level(state) == Balance(on_hand=5, damaged=0)
    state, _ = run(ev.adjusted(A, UK, 3, "damaged"), state=state)
    assert level(state) == Balance(on_hand=5, damaged=0)
    state, _ = run(ev.adjusted(A, UK, 4, "damaged"), state=state)
    assert level(state) == Balance(on_hand=5, damaged=2)


def at(hhmm: str) -> str:
    return f"2011-07-01T{hhmm}:00Z"


def on_hand_as_of(entries: list[Entry], hhmm: str) -> int:
    """What GET /v1/stock?as_of= reports: the item's entries that occurred by then, summed."""
    moment = ev.parse(ev.received(A, UK, 1, occurred_at=at(hhmm))).occurred_at
    return sum(e.deltas.get("on_hand", 0) for e in entries if e.occurred_at <= moment)


def test_a_movement_reported_after_a_later_count_is_not_taken_twice() -> None:
    state, entries = run(
        ev.received(A, UK, 10, occurred_at=at("09:00")),
        ev.placed("O1", UK, [("1", A, 2)], occurred_at=at("10:00")),
        ev.counted(A, UK, 8, occurred_at=at("12:00")),
        ev.fulfilled("O1", UK, [("1", A, 2)], occurred_at=at("11:30")),
    )
    assert level(state) == Balance(on_hand=8, committed=0)
    assert [on_hand_as_of(entries, t) for t in ("11:00", "11:45", "12:00", "13:00")] == [
        10,
        8,
        8,
        8,
    ]
    state, entries = run(ev.received(A, UK, 5, occurred_at=at("11:00")), state=state)
    assert level(state).on_hand == 8  # the count saw those units too


def test_a_count_reported_after_later_movements_applies_to_the_stock_at_its_time() -> None:
    state, entries = run(
        ev.received(A, UK, 10, occurred_at=at("09:00")),
        ev.shipped(A, UK, 2, "O1", "1", occurred_at=at("13:00")),
        ev.counted(A, UK, 8, occurred_at=at("12:00")),
    )
    assert level(state).on_hand == 6
    assert entries[-1].detail == {"expected": 10, "counted": 8}
    assert [on_hand_as_of(entries, t) for t in ("11:00", "12:00", "13:00")] == [10, 8, 6]


def test_a_count_older_than_the_latest_one_does_not_change_todays_stock() -> None:
    state, entries = run(
        ev.received(A, UK, 10, occurred_at=at("09:00")),
        ev.counted(A, UK, 8, occurred_at=at("12:00")),
        ev.counted(A, UK, 9, occurred_at=at("11:00")),
    )
    assert level(state).on_hand == 8
    assert [on_hand_as_of(entries, t) for t in ("10:00", "11:00", "12:00")] == [10, 9, 8]


def test_a_request_cancelled_before_any_confirmation_is_recorded_for_its_item() -> None:
    state = LedgerState(request_items={"RQ-1": (A, UK)})
    state, entries = run(ev.request_cancelled("RQ-1"), state=state)
    assert level(state) == Balance()
    assert [(e.sku, e.location, e.kind, e.deltas, e.reference) for e in entries] == [
        (A, UK, "replenishment_cancelled", {}, "RQ-1")
    ]
    state, entries = run(ev.confirmed("RQ-1", A, UK, 10), state=state)
    assert level(state) == Balance()


def test_a_request_of_unknown_item_cancelled_before_confirmation_records_nothing() -> None:
    _, entries = run(ev.request_cancelled("PO-7"))
    assert entries == []


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("sellable", Balance(on_hand=3, quality_control=1)),
        ("damaged", Balance(on_hand=3, damaged=2, quality_control=1)),
    ],
)
def test_an_inspection_takes_units_out_of_quality_control(outcome: str, expected: Balance) -> None:
    state, entries = run(ev.returned(A, UK, 3, "inspect"), ev.inspected(A, UK, 2, outcome))
    assert level(state) == expected
    assert (entries[-1].kind, entries[-1].detail) == ("inspection", {"outcome": outcome})
    assert state.refused == []


@pytest.mark.parametrize("outcome", ["sellable", "damaged"])
def test_inspecting_more_than_is_in_quality_control_is_refused_and_changes_nothing(
    outcome: str,
) -> None:
    state, _ = run(ev.received(A, UK, 10), ev.returned(A, UK, 1, "inspect"))
    inspection = ev.parse(ev.inspected(A, UK, 2, outcome))
    entries = apply_event(state, inspection)
    assert entries == []
    assert level(state) == Balance(on_hand=11, quality_control=1)
    assert state.refused == [(inspection, "schema", "qty 2 is more than quality_control holds (1)")]


def test_an_inspection_before_anything_is_in_quality_control_is_refused() -> None:
    state, entries = run(ev.inspected(A, UK, 1, "sellable"))
    assert (entries, level(state)) == ([], Balance())
    assert [reason for _, reason, _ in state.refused] == ["schema"]


def test_units_found_damaged_on_inspection_net_against_an_earlier_write_off() -> None:
    state, _ = run(
        ev.returned(A, UK, 3, "inspect"),
        ev.adjusted(A, UK, 2, "write_off"),
        ev.inspected(A, UK, 3, "damaged"),
    )
    assert level(state) == Balance(on_hand=1, damaged=1, quality_control=0)


def test_more_units_shipped_unlined_than_ordered_settle_alike_before_or_after_placement() -> None:
    received = ev.received(A, UK, 10)
    unlined = ev.shipped(A, UK, 5, "O1")
    placed = ev.placed("O1", UK, [("1", A, 2)])
    fulfilled = ev.fulfilled("O1", UK, [("1", A, 4)])
    before, _ = run(received, unlined, placed, fulfilled)
    after, _ = run(received, placed, unlined, fulfilled)
    assert level(before) == level(after) == Balance(on_hand=5, committed=0)


def test_shipped_units_are_dated_by_their_earliest_report_whatever_arrives_first() -> None:
    # picked and scanned at 11:20, counted at 12:00, reported fulfilled at 12:30: the count saw
    # the units gone, whichever report reached the ledger first
    received = ev.received(A, UK, 10, occurred_at=at("09:00"))
    placed = ev.placed("O1", UK, [("1", A, 3)], occurred_at=at("10:00"))
    scanned = ev.shipped(A, UK, 3, "O1", "1", occurred_at=at("11:20"))
    count = ev.counted(A, UK, 7, occurred_at=at("12:00"))
    fulfilled = ev.fulfilled("O1", UK, [("1", A, 3)], occurred_at=at("12:30"))
    for order in (
        [received, placed, scanned, count, fulfilled],
        [received, placed, fulfilled, count, scanned],
        [received, fulfilled, count, placed, scanned],
        [count, fulfilled, scanned, placed, received],
    ):
        state, entries = run(*order)
        assert level(state) == Balance(on_hand=7, committed=0)
        as_of = [on_hand_as_of(entries, t) for t in ("11:00", "11:30", "12:00", "13:00")]
        assert as_of[1:] == [7, 7, 7]


def test_a_line_stored_before_reports_were_kept_ships_each_unit_once() -> None:
    legacy = {"cancelled": False, "lines": {"1": [A, UK, 3, 3, 0, False]}}  # 3 scanned
    state = LedgerState(orders={"O1": OrderState.from_json(legacy)})
    state.balances[(A, UK)] = Balance(on_hand=7)
    state, _ = run(ev.fulfilled("O1", UK, [("1", A, 3)]), state=state)
    assert level(state) == Balance(on_hand=7)
    state, _ = run(ev.fulfilled("O1", UK, [("1", A, 1)]), state=state)
    assert level(state) == Balance(on_hand=6)
    assert OrderState.from_json(state.orders["O1"].to_json()) == state.orders["O1"]
