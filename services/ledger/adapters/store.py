"""Where the ledger is appended: the interface, and the in-memory twin that enforces its rules.

The twin is what the contract tests run first (fast); the PostgreSQL store must behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from shared.events.codec import InputEvent

from ..domain.batch import fold
from ..domain.rules import Entry
from ..domain.state import Balance, ItemKey, LedgerState


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid input event and the topic it came from."""

    topic: str
    event: InputEvent


@dataclass(frozen=True, slots=True)
class AppendResult:
    applied: int  # events applied for the first time
    duplicates: int  # events already in the ledger (or twice in the batch)
    entries: int  # ledger entries appended


@dataclass(frozen=True, slots=True)
class StoredEntry:
    position: int
    entry: Entry


class LedgerStore(Protocol):
    async def append(self, batch: list[Accepted]) -> AppendResult:
        """Apply each new event once, in order, in one atomic step."""
        ...

    async def balances(self) -> dict[ItemKey, Balance]:
        """The running balance of every item."""
        ...


def first_of_each(batch: list[Accepted]) -> list[Accepted]:
    """The batch without repeated event ids (the first delivery wins)."""
    unique: dict[int, Accepted] = {}
    for accepted in batch:  # keyed by the id's int: hashing a UUID runs Python code
        unique.setdefault(accepted.event.event_id.int, accepted)
    return list(unique.values())


class MemoryLedgerStore:
    """The in-memory twin of the PostgreSQL store."""

    def __init__(self, request_items: dict[str, ItemKey] | None = None) -> None:
        self.state = LedgerState()
        # the items of the replenishment requests raised (PostgreSQL reads them from
        # replenishment_requests)
        self.state.request_items = dict(request_items or {})
        self.processed: set[UUID] = set()
        self.entries: list[StoredEntry] = []

    async def append(self, batch: list[Accepted]) -> AppendResult:
        fresh = [a for a in first_of_each(batch) if a.event.event_id not in self.processed]
        self.processed.update(a.event.event_id for a in fresh)
        entries = fold(self.state, [a.event for a in fresh])
        start = len(self.entries) + 1
        self.entries.extend(StoredEntry(start + i, e) for i, e in enumerate(entries))
        return AppendResult(len(fresh), len(batch) - len(fresh), len(entries))

    async def balances(self) -> dict[ItemKey, Balance]:
        return {k: v for k, v in self.state.balances.items() if v != Balance()}
