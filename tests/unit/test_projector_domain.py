"""The projector's pure rules: levels from entries, redeliveries skipped."""

from __future__ import annotations

from typing import Any

from shared.levels import available, changes, fold


def entry(position: int, sku: str = "MUG", location: str = "UK", **deltas: int) -> dict[str, Any]:
    return {"position": position, "sku": sku, "location": location, "deltas": deltas}


def test_entries_of_one_item_are_summed_with_the_positions_they_cover() -> None:
    got = changes([entry(3, on_hand=5), entry(7, committed=2), entry(9, on_hand=-1)], {})
    change = got[("MUG", "UK")]
    assert change.deltas == [4, 2, 0, 0, 0]
    assert (change.first_position, change.last_position, change.entries) == (3, 9, 3)


def test_every_state_is_summed_in_its_place_and_an_unknown_one_ignored() -> None:
    every = entry(1, on_hand=1, committed=2, damaged=3, quality_control=4, incoming=5)
    got = changes([every, entry(2, incoming=10, reserved=7)], {})
    assert got[("MUG", "UK")].deltas == [1, 2, 3, 4, 15]


def test_entries_at_or_below_the_applied_position_are_skipped() -> None:
    got = changes(
        [entry(3, on_hand=5), entry(7, on_hand=2), entry(9, on_hand=1)], {("MUG", "UK"): 7}
    )
    assert got[("MUG", "UK")].deltas[0] == 1


def test_an_entry_published_twice_in_one_batch_counts_once() -> None:
    got = changes(
        [entry(3, on_hand=5), entry(4, on_hand=1), entry(3, on_hand=5), entry(4, on_hand=1)], {}
    )
    assert got[("MUG", "UK")].deltas[0] == 6


def test_a_batch_with_nothing_new_changes_nothing() -> None:
    assert changes([entry(3, on_hand=5)], {("MUG", "UK"): 3}) == {}


def test_available_is_on_hand_less_committed_damaged_and_quality_control() -> None:
    level = {"on_hand": 10, "committed": 4, "damaged": 1, "quality_control": 2, "incoming": 50}
    assert available(level) == 3


def test_fold_keeps_items_apart() -> None:
    levels = fold([entry(1, on_hand=5), entry(2, sku="CUP", on_hand=1), entry(3, committed=2)])
    assert levels[("MUG", "UK")]["committed"] == 2
    assert levels[("CUP", "UK")]["on_hand"] == 1


def test_every_api_route_is_in_the_openapi_document() -> None:
    from services.projector.api.openapi import full_document
    from services.projector.api.routes import stock_routes

    documented = set(full_document()["paths"])
    served = {route.path for route in stock_routes(None)}  # type: ignore[arg-type]
    assert served <= documented
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json"} <= documented
