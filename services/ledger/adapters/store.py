"""Where the ledger is appended: the interface, and the in-memory twin that enforces its rules.

The twin is what the contract tests run first (fast); the PostgreSQL store must behave the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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


Refused = tuple[Accepted, str, str]
"""A valid event the ledger refuses, with the reason code and detail of its dead letter."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    applied: int  # events applied for the first time
    duplicates: int  # events already in the ledger (or twice in the batch), with the same content
    entries: int  # ledger entries appended
    refused: tuple[Refused, ...] = ()  # for the dead-letter topic: conflicts, rule rejections


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


def payload_hash(event: InputEvent) -> bytes:
    """What an event says, hashed: two deliveries of one ``event_id`` are the same event when
    their hashes agree. ``source`` (who sent it) is left out: the same event may come through
    two channels."""
    return hashlib.blake2b(
        event.__pydantic_serializer__.to_json(event, exclude=_NOT_CONTENT), digest_size=16
    ).digest()


_NOT_CONTENT = {"source"}


def conflict(accepted: Accepted) -> Refused:
    """A delivery of a recorded ``event_id`` that says something else: refused, never applied."""
    detail = f"event_id {accepted.event.event_id} was recorded with other content"
    return accepted, "conflict", detail


Delivery = tuple[Accepted, bytes]
"""An event as delivered, with its payload hash."""


def first_of_each(batch: list[Accepted]) -> tuple[list[Delivery], list[Delivery]]:
    """The batch without repeated event ids (the first delivery wins), and the repeats; each
    delivery with its payload hash."""
    unique: dict[int, Delivery] = {}
    repeats: list[Delivery] = []
    for accepted in batch:  # keyed by the id's int: hashing a UUID runs Python code
        delivery = (accepted, payload_hash(accepted.event))
        if unique.setdefault(accepted.event.event_id.int, delivery) is not delivery:
            repeats.append(delivery)
    return list(unique.values()), repeats


def conflicts(
    deliveries: Iterable[Delivery], recorded: Mapping[UUID, bytes | None]
) -> list[Refused]:
    """The deliveries that say something else than what their event id was recorded with (an
    id recorded before payloads were hashed matches anything)."""
    refused = []
    for accepted, digest in deliveries:
        known = recorded.get(accepted.event.event_id)
        if known is not None and known != digest:
            refused.append(conflict(accepted))
    return refused


def refusals(state: LedgerState, applied: Iterable[Accepted]) -> list[Refused]:
    """The applied events the rules refused (taken out of ``state.refused``)."""
    if not state.refused:
        return []
    by_event = {id(a.event): a for a in applied}
    out = [(by_event[id(event)], reason, detail) for event, reason, detail in state.refused]
    state.refused.clear()
    return out


def refused_again(
    seen: Iterable[Delivery], recorded: Mapping[UUID, tuple[str, str]]
) -> list[Refused]:
    """Redeliveries of refused events: dead-lettered again (the first dead letter may have been
    lost in a crash after the refusal was committed)."""
    out: list[Refused] = []
    for accepted, _ in seen:
        refusal = recorded.get(accepted.event.event_id)
        if refusal is not None:
            out.append((accepted, *refusal))
    return out


class MemoryLedgerStore:
    """The in-memory twin of the PostgreSQL store."""

    def __init__(self, request_items: dict[str, ItemKey] | None = None) -> None:
        self.state = LedgerState()
        # the items of the replenishment requests raised (PostgreSQL reads them from
        # replenishment_requests)
        self.state.request_items = dict(request_items or {})
        self.processed: dict[UUID, bytes] = {}  # event id: payload hash
        self.refusals: dict[UUID, tuple[str, str]] = {}  # event id: reason, detail
        self.entries: list[StoredEntry] = []

    async def append(self, batch: list[Accepted]) -> AppendResult:
        unique, repeats = first_of_each(batch)
        fresh = []
        seen = []
        for accepted, digest in unique:
            if accepted.event.event_id in self.processed:
                seen.append((accepted, digest))
            else:
                fresh.append(accepted)
                self.processed[accepted.event.event_id] = digest
        refused = conflicts([*seen, *repeats], self.processed)
        same = [(a, d) for a, d in seen if self.processed[a.event.event_id] == d]
        refused += refused_again(same, self.refusals)
        duplicates = len(batch) - len(fresh) - len(refused)
        entries = fold(self.state, [a.event for a in fresh])
        for accepted, reason, detail in refusals(self.state, fresh):
            self.refusals[accepted.event.event_id] = (reason, detail)
            refused.append((accepted, reason, detail))
        start = len(self.entries) + 1
        self.entries.extend(StoredEntry(start + i, e) for i, e in enumerate(entries))
        return AppendResult(len(fresh), duplicates, len(entries), tuple(refused))

    async def balances(self) -> dict[ItemKey, Balance]:
        return {k: v for k, v in self.state.balances.items() if v != Balance()}
