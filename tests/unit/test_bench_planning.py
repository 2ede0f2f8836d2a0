"""The synthetic order history ``python -m bench.planning`` plans at scale."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from bench.planning import LOCATIONS, SIZES, START, history_rows


def test_the_history_has_the_asked_mean_rate_and_valid_rows() -> None:
    days, items = 200, 3000
    rows = history_rows(0, items, days, 0.17, np.random.default_rng(5))
    keys = [(sku, location, day, qty) for sku, location, day, qty, _ in rows]
    assert len(keys) == len(set(keys))  # one row per item, day and size (the table's key)
    assert all(lines > 0 for *_, lines in rows)
    assert {qty for *_, qty, _ in rows} <= set(SIZES.tolist())
    assert all(START <= day < START + timedelta(days=days) for _, _, day, _, _ in rows)
    assert {location for _, location, *_ in rows} == set(LOCATIONS)
    # items appear over the first half of the span: about three quarters of it is sold on
    lines = sum(n for *_, n in rows)
    assert 0.6 < lines / (items * days * 0.75 * 0.17) < 1.4


def test_chunks_number_their_items_apart() -> None:
    first = {(s, loc) for s, loc, *_ in history_rows(0, 30, 50, 2.0, np.random.default_rng(1))}
    later = {(s, loc) for s, loc, *_ in history_rows(30, 30, 50, 2.0, np.random.default_rng(1))}
    assert first
    assert later
    assert not first & later
