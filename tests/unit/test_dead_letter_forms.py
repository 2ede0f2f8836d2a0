"""The shortened forms of a dead letter too large for its topic."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from shared.kafka import dead_letter_forms

LIMIT = 10_000


def record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> SimpleNamespace:
    return SimpleNamespace(key=b"k", value=value, headers=headers or [], partition=2, offset=7)


def test_the_first_form_keeps_everything_and_cuts_the_detail_on_a_character() -> None:
    value, headers = next(
        dead_letter_forms(record(b"v", [("trace", b"t")]), "schema", "é" * 600, LIMIT)
    )
    named = dict(headers)
    assert value == b"v"
    assert headers[0][0] == "trace"
    assert named["error.detail"] == ("é" * 500).encode()  # 1000 bytes, no character cut in two
    assert named["error.offset"] == b"2:7"
    assert "error.truncated" not in named


def test_a_record_too_large_only_for_its_headers_keeps_its_value_whole() -> None:
    original = b"x" * (LIMIT - 1000)
    forms = list(
        dead_letter_forms(record(original, [("trace", b"t" * 2000)]), "too_large", "d", LIMIT)
    )
    whole, headers = forms[0]
    assert whole == original
    assert dict(headers)["error.truncated"] == b"headers"
    assert "trace" not in dict(headers)
    assert dict(forms[1][1])["error.truncated"] == b"value"  # should the topic refuse it still


def test_a_value_too_large_itself_is_cut_to_what_fits_then_halved() -> None:
    original = b"x" * (LIMIT * 2)
    forms = list(dead_letter_forms(record(original, [("trace", b"t")]), "too_large", "d", LIMIT))
    cut, headers = forms[0]
    named = dict(headers)
    assert named["error.truncated"] == b"value"
    assert named["error.original_size"] == str(len(original)).encode()
    assert cut is not None
    assert original.startswith(cut)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", cut, headers)
    assert LIMIT - 20 <= size <= LIMIT  # as much as fits, by the size estimate's upper bound
    # should the topic's limit be lower than known, half as much each time, down to nothing
    lengths = [len(v or b"") for v, _ in forms]
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[-1] == 0


def test_without_headers_or_a_long_detail_there_is_nothing_to_leave_out_but_the_value() -> None:
    forms = list(dead_letter_forms(record(b"x" * 100), "too_large", "short", LIMIT))
    assert "error.truncated" not in dict(forms[0][1])
    assert dict(forms[1][1])["error.truncated"] == b"value"
