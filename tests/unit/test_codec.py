"""Malformed input is rejected with the contract's reason codes, never with an exception."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.events.codec import Rejection, decode
from shared.events.envelope import MAX_MESSAGE_BYTES

from .. import events as ev


def reason(value: bytes | None) -> str:
    result = decode(value)
    assert isinstance(result, Rejection), result
    return result.reason


def with_data(**changes: Any) -> bytes:
    event = ev.received("SKU", "UK", 1)
    event["data"].update(changes)
    return orjson.dumps(event)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "schema"),
        (b'"text"', "schema"),
        (orjson.dumps({**ev.received("S", "L", 1), "type": "scan.teleported"}), "unknown_type"),
        (orjson.dumps({**ev.received("S", "L", 1), "event_id": "42"}), "schema"),
        (
            orjson.dumps({**ev.received("S", "L", 1), "occurred_at": "2011-07-01T08:26:00"}),
            "schema",
        ),
        (orjson.dumps({**ev.received("S", "L", 1), "occurred_at": "1309508760"}), "schema"),
        (orjson.dumps({**ev.received("S", "L", 1), "schema_version": 2}), "schema"),
        (with_data(sku=" SKU"), "schema"),
        (with_data(sku="SKU "), "schema"),
        (with_data(sku=""), "schema"),
        (with_data(sku="x" * 65), "schema"),
        (with_data(sku="A\tB"), "schema"),
        (with_data(qty="3"), "schema"),
        (with_data(qty=3.0), "schema"),
        (with_data(qty=0), "schema"),
        (with_data(qty=-1), "schema"),
        (with_data(colour="red"), "schema"),
        (b"{" + b'"a":"' + b"x" * MAX_MESSAGE_BYTES + b'"}', "too_large"),
        (orjson.dumps(ev.inspected("S", "L", 1, "inspect")), "schema"),
        (orjson.dumps(ev.inspected("S", "L", 0, "sellable")), "schema"),
        (orjson.dumps({**ev.inspected("S", "L", 1, "damaged"), "data": {"sku": "S"}}), "schema"),
    ],
)
def test_a_malformed_message_is_rejected_with_its_reason(
    value: bytes | None, expected: str
) -> None:
    assert reason(value) == expected


def test_a_correction_may_be_negative_but_not_zero() -> None:
    assert not isinstance(decode(orjson.dumps(ev.adjusted("S", "L", -2, "correction"))), Rejection)
    assert reason(orjson.dumps(ev.adjusted("S", "L", 0, "correction"))) == "schema"
    assert reason(orjson.dumps(ev.adjusted("S", "L", -2, "lost"))) == "schema"


def test_a_transfer_to_the_same_location_is_rejected() -> None:
    assert reason(orjson.dumps(ev.transferred("S", "UK", "UK", 1, "T1"))) == "schema"


def test_an_order_with_repeated_line_ids_is_rejected() -> None:
    assert reason(orjson.dumps(ev.placed("O1", "UK", [("1", "A", 1), ("1", "B", 1)]))) == "schema"


def test_skus_with_inner_spaces_and_non_ascii_characters_are_accepted() -> None:
    for sku in ("BANK CHARGES", "tasse à café", "a/b?c&d"):
        assert not isinstance(decode(with_data(sku=sku)), Rejection)


def test_the_rejection_detail_names_the_field() -> None:
    result = decode(with_data(qty="3"))
    assert isinstance(result, Rejection)
    assert "data.qty" in result.detail


def test_an_inspection_decodes_with_either_outcome() -> None:
    for outcome in ("sellable", "damaged"):
        event = decode(orjson.dumps(ev.inspected("S", "L", 2, outcome)))
        assert not isinstance(event, Rejection)
        assert event.type == "scan.inspected"
        assert event.data.model_dump() == {
            "sku": "S",
            "location": "L",
            "qty": 2,
            "outcome": outcome,
        }
