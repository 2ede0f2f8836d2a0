"""However events are shuffled and redelivered, the ledger's stock equals the reference."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.adapters.store import Accepted, MemoryLedgerStore
from services.ledger.domain.state import Balance

from .. import events as ev
from ..reference import deliveries, random_history, reference_balances


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
