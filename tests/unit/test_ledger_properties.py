"""However events are shuffled and redelivered, the ledger's stock equals the reference."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.adapters.store import Accepted, MemoryLedgerStore
from services.ledger.domain.state import Balance

from .. import events as ev
from ..reference import deliveries, random_history, reference_balances, request_items


def as_dicts(balances: dict[tuple[str, str], Balance]) -> dict[tuple[str, str], dict[str, int]]:
    return {
        k: {s: n for s, n in vars_of(b).items() if n} for k, b in balances.items() if b != Balance()
    }


def vars_of(b: Balance) -> dict[str, int]:
    return {s: getattr(b, s) for s in b.__slots__}


@settings(max_examples=1500, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 60), batches=st.integers(1, 8))
async def test_shuffled_and_redelivered_events_settle_to_the_reference_stock(
    seed: int, size: int, batches: int
) -> None:
    rng = random.Random(seed)
    history = random_history(rng, size)
    delivered = deliveries(rng, history)
    store = MemoryLedgerStore()
    cuts = sorted(rng.sample(range(len(delivered) + 1), min(batches, len(delivered) + 1)))
    for start, end in zip([0, *cuts], [*cuts, len(delivered)], strict=True):
        await store.append([Accepted("t", ev.parse(e)) for e in delivered[start:end]])
    assert as_dicts(await store.balances()) == reference_balances(history)
    assert len(store.processed) == len(history)


@settings(max_examples=1500, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 80), batches=st.integers(1, 8))
async def test_late_counts_unlined_shipments_write_offs_and_inspections_settle_too(
    seed: int, size: int, batches: int
) -> None:
    """Split transfers, cancellations before confirmation, write-offs before their damage,
    shipments without a line id before their order, counts arriving after later movements or
    followed by earlier ones, and inspections: refused when quality control holds too little
    on arrival (only those), and otherwise as the reference says."""
    rng = random.Random(seed)
    history = random_history(rng, size, extended=True)
    delivered = deliveries(rng, history)
    store = MemoryLedgerStore(request_items())
    refused: set[str] = set()
    cuts = sorted(rng.sample(range(len(delivered) + 1), min(batches, len(delivered) + 1)))
    for start, end in zip([0, *cuts], [*cuts, len(delivered)], strict=True):
        result = await store.append([Accepted("t", ev.parse(e)) for e in delivered[start:end]])
        for accepted, reason, _ in result.refused:
            assert (accepted.event.type, reason) == ("scan.inspected", "schema")
            refused.add(str(accepted.event.event_id))
        assert all(b.quality_control >= 0 for b in store.state.balances.values())
    assert as_dicts(await store.balances()) == reference_balances(history, refused)
    assert len(store.processed) == len(history)
    closed = {e.entry.reference for e in store.entries if e.entry.kind == "replenishment_cancelled"}
    assert closed == {
        e["data"]["request_id"] for e in history if e["type"] == "replenishment.cancelled"
    }
