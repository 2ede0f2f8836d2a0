"""Outsized order lines held out of the decision until their event-time day is over.

Pure: no I/O. A line larger than its item's order-up-to level is more than the item is ever
stocked for: a special order, served by a purchase of its own (Dekker et al. 2000, a cut-off
transaction size; Du & Larsen 2011, Postpone(q, t)). Such lines are often taken back within
minutes: on 2011-01-18 the shipped history has a line of 74,215 units cancelled 16 minutes
after it was placed. Deciding on it at once would buy the 74,215 units for nobody.

So an outsized line's units are held out of the item's inventory position until the day it was
placed on is over in event time, that is until a ledger entry dated after it is seen (of any
item). A line cancelled before then leaves nothing behind; a line still standing then counts,
and the item is decided on at that entry. This is the closed loop's rhythm, which decides once
a day at the day's close, applied to the lines where deciding at once costs the most.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from shared.levels import ItemKey


def outsized(qty: int, order_up_to: float) -> bool:
    """Whether a line of ``qty`` units is more than its item is ever stocked for."""
    return qty > order_up_to


class Postponed:
    """The outsized lines held, per item and order: the day each was placed on and its units
    (an order's outsized lines of one item, summed). ``changed``: the items whose lines were
    held, taken back or released since the state was read."""

    def __init__(self, held: Iterable[tuple[ItemKey, str, date, int]] = ()) -> None:
        self.lines: dict[ItemKey, dict[str, tuple[date, int]]] = {}
        self.changed: set[ItemKey] = set()
        self.earliest: date | None = None  # no line held was placed before it
        for key, reference, day, units in held:
            self.lines.setdefault(key, {})[reference] = (day, units)
            self.earliest = day if self.earliest is None else min(self.earliest, day)

    def units(self, key: ItemKey) -> int:
        """The units held out of the item's position."""
        return sum(units for _, units in self.lines.get(key, {}).values())

    def hold(self, key: ItemKey, reference: str, day: date, units: int) -> None:
        self.earliest = day if self.earliest is None else min(self.earliest, day)
        lines = self.lines.setdefault(key, {})
        before = lines.get(reference)
        lines[reference] = (
            min(day, before[0]) if before else day,
            units + (before[1] if before else 0),
        )
        self.changed.add(key)

    def take_back(self, key: ItemKey, reference: str, units: int) -> int:
        """A release of ``units`` committed to the order ``reference``: the units it takes
        back from the order's held line (they never entered the position)."""
        lines = self.lines.get(key, {})
        held = lines.get(reference)
        if held is None or units <= 0:
            return 0
        taken = min(held[1], units)
        if taken == held[1]:
            del lines[reference]
            if not lines:
                del self.lines[key]
        else:
            lines[reference] = (held[0], held[1] - taken)
        self.changed.add(key)
        return taken

    def due(self, day: date) -> list[tuple[ItemKey, int]]:
        """The lines placed before ``day`` (the day of the entry being read) leave the hold:
        per item, the units that now count, in item order."""
        if self.earliest is None or self.earliest >= day:
            return []  # the usual case, in one comparison
        out = []
        for key in sorted(self.lines):
            lines = self.lines[key]
            over = [r for r, (placed, _) in lines.items() if placed < day]
            if over:
                out.append((key, sum(lines.pop(r)[1] for r in over)))
                self.changed.add(key)
                if not lines:
                    del self.lines[key]
        self.earliest = min(
            (placed for lines in self.lines.values() for placed, _ in lines.values()), default=None
        )
        return out

    def rows(self) -> list[tuple[str, str, str, date, int]]:
        """The held lines of the changed items, as rows (sku, location, reference, day,
        units)."""
        return [
            (key[0], key[1], reference, day, units)
            for key in sorted(self.changed)
            for reference, (day, units) in sorted(self.lines.get(key, {}).items())
        ]
