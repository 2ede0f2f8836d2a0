"""Outsized order lines held out of the replenisher's decision until their day is over."""

from __future__ import annotations

from datetime import date

from services.replenisher.postpone import Postponed, outsized

MUG = ("MUG", "UK")
JUG = ("JUG", "UK")
D = date(2011, 1, 18)


def test_a_line_is_outsized_only_above_the_order_up_to_level() -> None:
    assert not outsized(40, 40)
    assert outsized(41, 40)
    assert outsized(1, 0)  # an item not stocked: every line is a special order


def test_a_line_taken_back_the_same_day_leaves_nothing_to_decide_on() -> None:
    p = Postponed()
    p.hold(MUG, "O1", D, 74_215)
    assert p.units(MUG) == 74_215
    assert p.take_back(MUG, "O1", 74_215) == 74_215
    assert p.units(MUG) == 0
    assert p.due(date(2011, 1, 19)) == []
    assert p.changed == {MUG}
    assert p.rows() == []  # the item's rows are all deleted


def test_only_the_units_of_the_held_order_are_taken_back() -> None:
    p = Postponed()
    p.hold(MUG, "O1", D, 500)
    assert p.take_back(MUG, "O2", 30) == 0  # another order's line: it was counted at once
    assert p.take_back(MUG, "O1", 200) == 200  # a partial cancellation
    assert p.take_back(MUG, "O1", 900) == 300  # never more than was held
    assert p.take_back(MUG, "O1", 5) == 0


def test_lines_leave_the_hold_at_the_first_entry_of_a_later_day() -> None:
    p = Postponed([(MUG, "O1", D, 500), (JUG, "O3", date(2011, 1, 17), 80)])
    p.hold(MUG, "O2", D, 300)
    p.hold(MUG, "O1", D, 20)  # a second outsized line of the same order
    assert p.units(MUG) == 820
    assert p.due(D) == [(JUG, 80)]  # placed the day before
    assert p.due(D) == []
    assert p.due(date(2011, 1, 19)) == [(MUG, 820)]
    assert p.lines == {}
    assert p.changed == {MUG, JUG}


def test_rows_are_the_lines_still_held_of_the_changed_items() -> None:
    p = Postponed([(JUG, "O3", D, 80)])
    p.hold(MUG, "O2", D, 300)
    p.hold(MUG, "O1", date(2011, 1, 17), 10)
    assert p.rows() == [
        ("MUG", "UK", "O1", date(2011, 1, 17), 10),
        ("MUG", "UK", "O2", D, 300),
    ]  # JUG did not change: its row stays as it is
