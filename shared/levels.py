"""Stock levels from ledger entries, shared by the projector and the replenisher.

Pure: no I/O. The caller supplies the entries (as published on ``stock.ledger.v1``) and, for
:func:`changes`, the last position already applied to each item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STATES = ("on_hand", "committed", "damaged", "quality_control", "incoming")
ItemKey = tuple[str, str]  # (sku, location)


@dataclass(slots=True)
class Change:
    """What a batch adds to one item: summed deltas, and the positions it covers."""

    deltas: list[int]
    first_position: int
    last_position: int
    entries: int = 0


def available(level: Mapping[str, int]) -> int:
    """What can be sold: on hand less what is promised, damaged or in quality control."""
    return level["on_hand"] - level["committed"] - level["damaged"] - level["quality_control"]


def fresh_entries(
    entries: Iterable[Mapping[str, Any]], applied: Mapping[ItemKey, int]
) -> list[Mapping[str, Any]]:
    """The entries not yet applied: above their item's applied position, each once (the relay
    may publish an entry twice after a crash). Entries of one item arrive in position order."""
    last = dict(applied)
    out = []
    for e in entries:
        key = (e["sku"], e["location"])
        if e["position"] > last.get(key, 0):
            last[key] = e["position"]
            out.append(e)
    return out


def changes(
    entries: Iterable[Mapping[str, Any]], applied: Mapping[ItemKey, int]
) -> dict[ItemKey, Change]:
    """Sum the fresh entries (see :func:`fresh_entries`) per item."""
    return summed(fresh_entries(entries, applied))


_STATE_INDEX = {state: i for i, state in enumerate(STATES)}


def summed(fresh: Iterable[Mapping[str, Any]]) -> dict[ItemKey, Change]:
    """Sum entries already known to be fresh per item (a delta of no known state is ignored)."""
    out: dict[ItemKey, Change] = {}
    index = _STATE_INDEX
    for e in fresh:
        key = (e["sku"], e["location"])
        position = e["position"]
        change = out.get(key)
        if change is None:
            change = out[key] = Change([0, 0, 0, 0, 0], position, position)
        deltas = change.deltas
        for state, value in e["deltas"].items():  # an entry names the states it moves, often one
            i = index.get(state)
            if i is not None:
                deltas[i] += value
        change.last_position = position
        change.entries += 1
    return out


def fold(entries: Iterable[Mapping[str, Any]]) -> dict[ItemKey, dict[str, int]]:
    """The level of every item after the entries, in order (for rebuild checks and tests)."""
    levels: dict[ItemKey, dict[str, int]] = {}
    for e in entries:
        level = levels.setdefault((e["sku"], e["location"]), dict.fromkeys(STATES, 0))
        for state in STATES:
            level[state] += e["deltas"].get(state, 0)
    return levels
