"""Fuzzing the input decoder: whatever arrives, ``decode`` answers, and never raises.

More than 10,000 hostile messages in all: random bytes, JSON of random shape, envelope-shaped
JSON, and valid contract events broken by one (or several) targeted mutations. Every answer is
either a :class:`Rejection` with one of the contract's DLQ reasons and a detail, or an event that
really keeps the contract (checked independently of the models). Valid and malformed messages
interleaved through the ledger's pure path (decode, then the in-memory store) apply exactly the
valid events.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Literal, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from services.ledger.adapters.consumer import LedgerConsumer
from services.ledger.adapters.store import MemoryLedgerStore
from services.ledger.metrics import LedgerMetrics
from shared.events.codec import EVENT_TYPES, InputEvent, Rejection, decode
from shared.events.envelope import MAX_MESSAGE_BYTES, MAX_QTY
from shared.kafka import Assignment
from shared.topics import ORDERS, REPLENISHMENT_UPDATES, SCANS

from .. import events as ev

T = TypeVar("T")
REASONS = frozenset({"empty", "invalid_json", "schema", "unknown_type", "too_large"})
CODE_KEYS = frozenset({"sku", "location", "from_location", "to_location"})  # 1 to 64
ID_KEYS = frozenset(
    {"order_id", "line_id", "request_id", "transfer_id", "reference", "from_bin", "to_bin"}
)  # 1 to 128
TIME_KEYS = frozenset({"occurred_at", "expected_at"})
# Never printable: control, format, surrogate, private use and separators (a plain space is
# allowed inside a code). Unassigned code points (Cn) are left out: Python's Unicode database and
# the validator's may be of different versions.
UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Zs"})
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much]


# --- what every answer must be ---------------------------------------------------------------


def is_code(value: object, longest: int) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        return False
    if value[0] == " " or value[-1] == " ":
        return False
    return all(c == " " or unicodedata.category(c) not in UNPRINTABLE for c in value)


def check_fields(value: Any, signed: bool, where: str = "data") -> None:
    """The contract's rules for the fields of ``data``, checked without the models."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_fields(item, signed, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        at = f"{where}.{key}"
        if key in CODE_KEYS:
            assert is_code(item, 64), (at, item)
        elif key in ID_KEYS and item is not None:
            assert is_code(item, 128), (at, item)
        elif key == "qty":
            low = -MAX_QTY if signed and at == "data.qty" else 1
            assert type(item) is int, (at, item)
            assert low <= item <= MAX_QTY, (at, item)
            assert item != 0, (at, item)
        elif key == "counted_qty":
            assert type(item) is int, (at, item)
            assert 0 <= item <= MAX_QTY, (at, item)
        else:
            check_fields(item, signed, at)


def check_event(event: InputEvent) -> None:
    assert event.type in EVENT_TYPES
    assert event.schema_version == 1
    assert event.occurred_at.utcoffset() is not None, event.occurred_at
    assert event.source is None or len(event.source) <= 256
    data = event.data.model_dump()
    if event.type == "scan.transferred":
        assert data["from_location"] != data["to_location"]
    check_fields(data, signed=event.type == "scan.adjusted")
    # What was accepted can be sent on again and means the same.
    again = decode(event.model_dump_json().encode())
    assert again == event, again


def answer(value: bytes | None) -> InputEvent | Rejection:
    """``decode`` itself: any exception escaping it fails the test with its traceback."""
    result = decode(value)
    if isinstance(result, Rejection):
        assert result.reason in REASONS, result
        assert isinstance(result.detail, str), result
        assert result.detail.strip(), result
    else:
        check_event(result)
    return result


# --- valid contract events (tests/events.py builders) ----------------------------------------

ODD = ["BANK CHARGES", "a/b", "what?", "fish & chips", "tasse à café", "#1 50%", "x+y=z", "Ω 🙂"]
printable = st.characters(exclude_categories=("C", "Z")) | st.just(" ")
codes64 = st.one_of(
    st.sampled_from(ODD),
    st.text(printable, min_size=1, max_size=64).map(lambda s: s.strip(" ")).filter(bool),
)
ids128 = st.one_of(
    codes64, st.text(printable, min_size=1, max_size=128).map(lambda s: s.strip(" ")).filter(bool)
)
qtys = st.integers(1, MAX_QTY)
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def rfc3339(draw: st.DrawFn, naive: bool = False) -> str:
    """An RFC 3339 time in any of the spellings the contract accepts (or, naive, without zone)."""
    at = draw(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2998, 12, 31)))
    sep = draw(st.sampled_from("Tt "))
    text = at.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + f"{at.microsecond:06d}000"[:digits]
    if naive:
        return text
    zone = draw(offsets)
    minutes = int(zone.utcoffset(None).total_seconds()) // 60
    if minutes == 0 and draw(st.booleans()):
        return text + draw(st.sampled_from("Zz"))
    sign = "-" if minutes < 0 else "+"
    return text + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@st.composite
def order_lines(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    line_ids = draw(st.lists(ids128, min_size=1, max_size=5, unique=True))
    return [(lid, draw(codes64), draw(qtys)) for lid in line_ids]


@st.composite
def adjustment(draw: st.DrawFn) -> dict[str, Any]:
    reason = draw(
        st.sampled_from(("found", "lost", "expired", "damaged", "write_off", "correction"))
    )
    if reason == "correction":
        qty = draw(st.integers(-MAX_QTY, MAX_QTY).filter(bool))
    else:
        qty = draw(qtys)
    return ev.adjusted(draw(codes64), draw(codes64), qty, reason)


@st.composite
def transfer(draw: st.DrawFn) -> dict[str, Any]:
    here, there = draw(st.lists(codes64, min_size=2, max_size=2, unique=True))
    return ev.transferred(draw(codes64), here, there, draw(qtys), draw(ids128))


@st.composite
def confirmation(draw: st.DrawFn) -> dict[str, Any]:
    event = ev.confirmed(draw(ids128), draw(codes64), draw(codes64), draw(qtys))
    if draw(st.booleans()):
        event["data"]["expected_at"] = draw(rfc3339())
    return event


optional_ids = st.none() | ids128
bodies = st.one_of(
    st.builds(ev.received, codes64, codes64, qtys, optional_ids),
    st.builds(ev.shipped, codes64, codes64, qtys, ids128, optional_ids),
    adjustment(),
    st.builds(ev.counted, codes64, codes64, st.integers(0, MAX_QTY)),
    transfer(),
    st.builds(
        ev.returned,
        codes64,
        codes64,
        qtys,
        st.sampled_from(["sellable", "damaged", "inspect"]),
        optional_ids,
    ),
    st.builds(ev.moved, codes64, codes64, qtys, ids128, ids128),
    st.builds(ev.inspected, codes64, codes64, qtys, st.sampled_from(["sellable", "damaged"])),
    st.builds(ev.placed, ids128, codes64, order_lines()),
    st.builds(ev.fulfilled, ids128, codes64, order_lines()),
    st.builds(
        ev.cancelled, ids128, st.none() | st.lists(ids128, min_size=1, max_size=5, unique=True)
    ),
    confirmation(),
    st.builds(ev.request_cancelled, ids128),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A contract event as a producer sends it; id, time and source drawn (not left to chance)."""
    event: dict[str, Any] = draw(bodies)
    event["event_id"] = str(draw(st.uuids()))
    event["occurred_at"] = draw(rfc3339())
    source = draw(st.none() | st.text(max_size=256))
    if source is None:
        del event["source"]
    else:
        event["source"] = source
    return event


# --- rendering JSON with the things json.dumps will not write ----------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put in as it is: NaN, lone surrogates, control characters, deep nesting."""

    text: str


class Pairs(list[tuple[str, Any]]):
    """An object that may repeat a key."""


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return (
            "{"
            + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {render(v)}" for k, v in value)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def encode(event: Any) -> bytes:
    return render(event).encode("utf-8", "surrogatepass")


# --- mutations ----------------------------------------------------------------------------------

Path = tuple[str | int, ...]
Expect = frozenset[str] | Literal["same"] | None


@dataclass(frozen=True)
class Mutant:
    """A broken message, what broke it, and what ``decode`` must answer.

    ``expect``: a set of reasons it must be rejected with; "same": the event it was made from;
    None: any answer that keeps the contract.
    """

    what: str
    value: bytes
    expect: Expect
    original: bytes = field(repr=False)

    def __repr__(self) -> str:
        shown = self.value if len(self.value) <= 600 else self.value[:600] + b"..."
        return f"Mutant({self.what!r}, expect={self.expect!r}, {len(self.value)} bytes: {shown!r})"


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every field of every object in the event, containers included."""
    found: list[Path] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


def get(event: Any, path: Path) -> Any:
    for step in path:
        event = event[step]
    return event


def put(event: Any, path: Path, value: Any) -> None:
    get(event, path[:-1])[path[-1]] = value


def optional(event: dict[str, Any], path: Path) -> bool:
    if path == ("source",):
        return True
    if len(path) != 2 or path[0] != "data":
        return False
    key = path[1]
    return key in {"reference", "line_id", "expected_at"} or (key, event["type"]) in {
        ("order_id", "scan.returned"),
        ("lines", "order.cancelled"),
    }


def kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


OTHER_VALUES: list[Any] = [None, True, False, 0, 1, -7, 1.5, -0.25, "", "x", "12", [], [1], {}]
OTHER_VALUES += [{"a": 1}, {"sku": "MUG"}]
BAD_CHARS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
BAD_CHARS += ["\u00ad", "\u200b", "\u200e", "\u2028", "\u2029", "\u2066", "\ufeff", "\ue000"]
BAD_CHARS += ["\U000e0001", "\U000f0000"]
BLANKS = [" ", "\t", "\n", "\r", "\u00a0", "\u1680", "\u2003", "\u202f", "\u3000", "\u200b"]
unprintable = st.sampled_from(BAD_CHARS) | st.characters(
    categories=("Cc", "Cf", "Co", "Zl", "Zp", "Zs"), exclude_characters=" "
)


# Strategies built once (building them per example costs more than drawing from them).
MUTATIONS = (
    "delete",
    "retype",
    "unprintable",
    "huge",
    "negative",
    "time",
    "unknown_type",
    "schema_version",
    "nested",
    "long_string",
    "nan",
    "duplicate_key",
    "truncate",
    "not_an_object",
    "byte_noise",
)
BAD_TIMES = (
    "2011-02-30T08:00:00Z",
    "2011-13-01T08:00:00Z",
    "2011-07-01T25:00:00Z",
    "2011-07-01T08:61:00Z",
    "2011-07-01T08:00:61Z",
    "2011-07-01T08:00:00+24:00",
    "2011-07-01T08:00:00+99:99",
    "2011-07-01T08:00:00.Z",
    "2011-07-01T08:00:00.1234567891Z",
    "2011-07-01T08:00:00 Z",
    "2011-07-01T08:00Z",
    "2011-07-01",
    "20110701T080000Z",
    "2011-07-01T08:00:00+0100",
    "2011-07-01T08:00:00 +01:00",
    " 2011-07-01T08:00:00Z",
    "2011-07-01T08:00:00Z ",
    "0000-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "２０１１-07-01T08:00:00Z",
    "now",
    "",
)
bad_times = st.one_of(
    rfc3339(naive=True),
    st.dates().map(str),
    st.text(max_size=40).filter(lambda s: not RFC3339.fullmatch(s)),
    st.integers(0, 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(BAD_TIMES),
)
huge_numbers = (
    st.integers(MAX_QTY + 1, 2**70)
    | st.integers(-(2**70), -MAX_QTY - 1)
    | st.integers(10, 400).map(lambda k: 10**k)
    | st.sampled_from((2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 1.7976931348623157e308))
)
non_positive = st.integers(-MAX_QTY, 0) | st.sampled_from((0, -1, -MAX_QTY))
odd_types = st.text(max_size=100) | st.sampled_from(
    ("scan", "order.*", "scan.received.v2", "replenishment.requested", "Scan.Received")
)
bad_versions = st.integers().filter(lambda n: n != 1) | st.sampled_from(
    (0, 2, -1, 10**20, "1", 1.0, 1.5, True, None, "v1", "")
)
depths = st.integers(2, 100) | st.integers(100, 3000)
long_sizes = (
    st.integers(257, 5_000)
    | st.integers(5_000, 1_100_000)
    | st.sampled_from((MAX_MESSAGE_BYTES - 400, MAX_MESSAGE_BYTES))
)
blanks = st.text(st.sampled_from(BLANKS), min_size=1, max_size=3)
raw_controls = st.sampled_from(tuple(chr(c) for c in range(0x20)))
lone_halves = st.sampled_from(("\\ud800", "\\udbff", "\\udc00", "\\udfff"))
non_json_numbers = st.sampled_from(("NaN", "Infinity", "-Infinity", "nan", "inf", "1e999"))


def pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    """One of ``items`` (by index: a strategy per list of the moment would be rebuilt each time)."""
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def mutants(draw: st.DrawFn, noisy: bool = True) -> Mutant:
    base = draw(valid_events())
    original = encode(base)
    event: Any = copy.deepcopy(base)
    every = paths(event)
    strings = [p for p in every if isinstance(get(event, p), str)]
    codes = [p for p in strings if p[-1] in CODE_KEYS | ID_KEYS]
    quantities = [p for p in every if p[-1] in {"qty", "counted_qty"}]
    kinds = [k for k in MUTATIONS if noisy or k != "byte_noise"]
    if not quantities:
        kinds.remove("negative")
    how = pick(draw, kinds)
    expect: Expect

    if how == "delete":
        path = pick(draw, every)
        del get(event, path[:-1])[path[-1]]
        expect = None if optional(event, path) else frozenset({"schema"})
    elif how == "retype":
        path = pick(draw, every)
        old = get(event, path)
        new = pick(draw, [v for v in OTHER_VALUES if kind(v) != kind(old)])
        put(event, path, new)
        expect = None if new is None and optional(event, path) else frozenset({"schema"})
    elif how == "unprintable":
        path = pick(draw, codes)
        old = get(event, path)
        where = pick(draw, ["inside", "pad", "raw_control", "lone_surrogate"])
        if where == "inside":
            at = draw(st.integers(0, len(old)))
            put(event, path, old[:at] + draw(unprintable) + old[at:])
            expect = frozenset({"schema"})
        elif where == "pad":
            pad = draw(blanks)
            put(event, path, pick(draw, [pad + old, old + pad, pad + old + pad]))
            expect = frozenset({"schema"})
        elif where == "raw_control":  # unescaped, which JSON does not allow
            control = draw(raw_controls)
            put(event, path, Raw(json.dumps(old, ensure_ascii=False)[:-1] + control + '"'))
            expect = frozenset({"invalid_json"})
        else:
            half = draw(lone_halves)
            put(event, path, Raw(json.dumps(old, ensure_ascii=False)[:-1] + half + '"'))
            expect = frozenset({"invalid_json"})
    elif how == "huge":
        path = pick(draw, [*quantities, ("schema_version",)])
        big = draw(huge_numbers)
        put(event, path, big)
        # Beyond a double's range both JSON parsers call the number invalid.
        expect = frozenset({"schema"} if abs(big) < 1e300 else {"schema", "invalid_json"})
    elif how == "negative":
        path = pick(draw, quantities)
        qty = draw(non_positive)
        put(event, path, qty)
        correction = path == ("data", "qty") and event["data"].get("reason") == "correction"
        still_valid = (correction and qty != 0) or (path[-1] == "counted_qty" and qty == 0)
        expect = None if still_valid else frozenset({"schema"})
    elif how == "time":
        path = pick(draw, [p for p in every if p[-1] in TIME_KEYS])
        bad = draw(bad_times)
        put(event, path, bad)
        expect = frozenset({"schema"})
    elif how == "unknown_type":
        valid = event["type"]
        variants = [valid.upper(), f" {valid}", f"{valid} ", valid.replace(".", "_")]
        new = pick(draw, variants) if draw(st.booleans()) else draw(odd_types)
        if new in EVENT_TYPES:
            new = new + "!"
        event["type"] = new
        expect = frozenset({"unknown_type"})
    elif how == "schema_version":
        event["schema_version"] = (
            draw(bad_versions) if draw(st.booleans()) else pick(draw, [[1], {"v": 1}])
        )
        expect = frozenset({"schema"})
    elif how == "nested":
        depth = draw(depths)
        deep = Raw(pick(draw, ["[" * depth + "]" * depth, '{"a": ' * depth + "1" + "}" * depth]))
        where = pick(draw, ["field", "data_extra", "top_extra"])
        if where == "field":
            put(event, pick(draw, every), deep)
            expect = frozenset({"schema", "invalid_json"})
        elif where == "data_extra":  # data refuses unknown fields
            event["data"]["extra"] = deep
            expect = frozenset({"schema", "invalid_json"})
        else:  # the envelope ignores unknown fields, as deep as a parser goes
            event["extra"] = deep
            expect = None
    elif how == "long_string":
        path = pick(draw, strings)
        size = draw(long_sizes)
        put(event, path, (pick(draw, ["x", "é", "🙂", "a b", "\\"]) * size)[:size])
        value = encode(event)
        if len(value) > MAX_MESSAGE_BYTES:
            expect = frozenset({"too_large"})
        elif path == ("type",):
            expect = frozenset({"unknown_type"})
        else:
            expect = frozenset({"schema"})
        return Mutant(f"{how} at {path}", value, expect, original)
    elif how == "nan":
        token = draw(non_json_numbers)
        if draw(st.booleans()):
            put(event, pick(draw, every), Raw(token))
            expect = frozenset({"invalid_json"} if token != "1e999" else {"invalid_json", "schema"})
        else:
            event["extra"] = Raw(token)
            expect = None
    elif how == "duplicate_key":
        objects = [(), *[p for p in every if isinstance(get(event, p), dict)]]
        owner = pick(draw, objects)
        target = get(event, owner)
        key = pick(draw, sorted(target))
        old = target[key]
        garbage = pick(draw, [v for v in OTHER_VALUES[1:] if kind(v) != kind(old)])
        last = draw(st.booleans())
        items = [(k, v) for k, v in target.items() if k != key]
        items += [(key, old), (key, garbage)] if last else [(key, garbage), (key, old)]
        if owner:
            put(event, owner, Pairs(items))
        else:
            event = Pairs(items)
        # The last of repeated keys counts, as in both JSON parsers the codec uses.
        expect = frozenset({"schema"}) if last else "same"
    elif how == "truncate":
        text = encode(event)
        cut = draw(st.integers(0, len(text) - 1))
        return Mutant(
            f"{how} at {cut}",
            text[:cut],
            frozenset({"empty"} if cut == 0 else {"invalid_json"}),
            original,
        )
    elif how == "not_an_object":
        event = pick(draw, [[event], [], [[event]], str(encode(event)), 1, None, True])
        expect = frozenset({"schema"})
    else:  # a mutant (or the event) with bytes inserted, replaced or cut: general rules only
        value = draw(mutants(noisy=False)).value if draw(st.booleans()) else original
        for _ in range(draw(st.integers(1, 4))):
            spot = draw(st.integers(0, len(value)))
            gone = draw(st.integers(0, 4))
            value = value[:spot] + draw(st.binary(max_size=4)) + value[spot + gone :]
        return Mutant(how, value, None, original)
    return Mutant(how, encode(event), expect, original)


# --- the properties -------------------------------------------------------------------------------


def test_empty_and_oversized_values_are_rejected_with_their_reasons() -> None:
    assert answer(None) == Rejection("empty", "the message has no value")
    assert answer(b"") == Rejection("empty", "the message has no value")
    big = ev.received("MUG", "UK", 1, source="x" * MAX_MESSAGE_BYTES)
    rejected = answer(orjson.dumps(big))
    assert isinstance(rejected, Rejection)
    assert rejected.reason == "too_large"


@settings(max_examples=3000, deadline=None, suppress_health_check=SLOW_OK)
@given(st.binary(max_size=600) | st.text(max_size=300).map(lambda s: s.encode("utf-8")))
def test_random_bytes_never_raise(value: bytes) -> None:
    answer(value)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def json_of(leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value (hypothesis' recursive strategy), up to ``leaves`` scalars."""
    return st.recursive(
        json_scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=leaves,
    )


json_values = json_of(15)
small_json = json_of(3)


@settings(max_examples=2200, deadline=None, suppress_health_check=SLOW_OK)
@given(json_values, st.booleans())
def test_json_of_any_shape_is_schema_or_unknown_type(value: Any, ascii_only: bool) -> None:
    result = answer(json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))
    assert isinstance(result, Rejection), result
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        assert result.reason == "schema", result
    elif value["type"] not in EVENT_TYPES:
        assert result.reason == "unknown_type", result
    else:
        assert result.reason == "schema", result


envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.uuids().map(str) | small_json,
        "type": st.sampled_from(sorted(EVENT_TYPES)) | small_json,
        "schema_version": st.just(1) | small_json,
        "occurred_at": rfc3339() | small_json,
        "source": st.text(max_size=20) | small_json,
        "data": st.dictionaries(
            st.sampled_from(
                ["sku", "location", "qty", "order_id", "lines", "reason", "request_id"]
            ),
            small_json,
        )
        | small_json,
    },
)


@settings(max_examples=1200, deadline=None, suppress_health_check=SLOW_OK)
@given(envelope_like)
def test_envelope_shaped_json_is_refused_with_a_reason(value: dict[str, Any]) -> None:
    result = answer(json.dumps(value).encode())
    if isinstance(result, Rejection) and isinstance(value.get("type"), str):
        expected = "schema" if value["type"] in EVENT_TYPES else "unknown_type"
        assert result.reason == expected, result


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW_OK)
@given(valid_events())
def test_unmutated_valid_events_always_decode(event: dict[str, Any]) -> None:
    result = answer(encode(event))
    assert not isinstance(result, Rejection), (result, event)
    assert str(result.event_id) == event["event_id"]
    assert result.type == event["type"]


@settings(max_examples=3600, deadline=None, suppress_health_check=SLOW_OK)
@given(mutants())
def test_mutated_events_are_rejected_with_the_fitting_reason(mutant: Mutant) -> None:
    result = answer(mutant.value)
    outcome = result.reason if isinstance(result, Rejection) else "event"
    tally(f"{mutant.what.split(' at ')[0]} -> {outcome}")  # --hypothesis-show-statistics
    if mutant.expect == "same":
        assert result == decode(mutant.original), result
    elif mutant.expect is not None:
        assert isinstance(result, Rejection), (result, mutant.what)
        assert result.reason in mutant.expect, (result, mutant.what)


@st.composite
def times_around(draw: st.DrawFn, *edges: datetime) -> str:
    """A time within a day of one of ``edges``, spelled with any offset."""
    zone = draw(offsets)
    minutes = int(zone.utcoffset(None).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    edge = draw(st.sampled_from(edges))
    one_day = timedelta(days=1)
    low = edge - one_day if edge - datetime.min > one_day else datetime.min
    high = edge + one_day if datetime.max - edge > one_day else datetime.max
    at = draw(st.datetimes(min_value=low, max_value=high))
    return at.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + offset


def with_time(at: str, expected_at: bool) -> dict[str, Any]:
    if expected_at:
        event = ev.confirmed("R1", "MUG", "UK", 5)
        event["data"]["expected_at"] = at
        return event
    return ev.received("MUG", "UK", 5, occurred_at=at)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(times_around(datetime.min, datetime.max), st.booleans())
def test_accepted_times_can_be_stored_in_utc(at: str, expected_at: bool) -> None:
    """The ledger stores times as UTC (asyncpg converts them): a time the decoder accepts but that
    has no UTC equivalent would fail the append on every retry and stop the ledger."""
    result = decode(orjson.dumps(with_time(at, expected_at)))
    if not isinstance(result, Rejection):
        for t in (result.occurred_at, getattr(result.data, "expected_at", None)):
            if t is not None:
                try:
                    t.astimezone(UTC)
                except OverflowError:
                    pytest.fail(f"{at!r} is accepted but has no UTC equivalent")


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(times_around(datetime(1900, 1, 1), datetime(3000, 1, 1)), st.booleans())
def test_times_at_the_ends_of_the_accepted_years_read_back_the_same(
    at: str, expected_at: bool
) -> None:
    """Accepted times are kept in UTC; the years allowed must hold for that UTC time too, or an
    accepted event, sent on as it is stored, would be refused."""
    result = decode(orjson.dumps(with_time(at, expected_at)))
    if not isinstance(result, Rejection):
        again = decode(result.model_dump_json().encode())
        assert again == result, f"{at!r} is accepted as {result.occurred_at}, which reads {again}"


# --- the ledger's pure path: decode, then append to the in-memory twin ----------------------------

TOPICS = {"scan": SCANS, "order": ORDERS, "replenishment": REPLENISHMENT_UPDATES}
PREFIX = "fuzz."


def record(offset: int, topic: str, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=PREFIX + topic, partition=0, offset=offset, key=None, value=value)


rejected_mutants = mutants(noisy=False).filter(
    lambda m: m.expect is not None and m.expect != "same"
)
deliveries = st.lists(
    st.one_of(
        valid_events().map(lambda e: ("valid", e)),
        rejected_mutants.map(lambda m: ("malformed", m)),
        st.binary(max_size=64).map(lambda b: ("malformed", b)),
    ),
    max_size=25,
)


@settings(max_examples=250, deadline=None, suppress_health_check=SLOW_OK)
@given(deliveries, st.data())
async def test_interleaved_messages_apply_exactly_the_valid_events(
    messages: list[tuple[str, Any]], data: st.DataObject
) -> None:
    store = MemoryLedgerStore()
    metrics = LedgerMetrics.create()
    consumer = LedgerConsumer(None, None, store, metrics, Assignment(), PREFIX, 500, 20)
    records: list[SimpleNamespace] = []
    malformed: list[SimpleNamespace] = []
    valid_ids: set[str] = set()
    for offset, (what, item) in enumerate(messages):
        if what == "valid":
            topic = TOPICS[item["type"].split(".")[0]]
            value = encode(item)
            valid_ids.add(item["event_id"])
            if data.draw(st.booleans(), label="delivered twice"):
                records.append(record(offset, topic, value))
        else:
            topic = data.draw(st.sampled_from(sorted(TOPICS.values())), label="topic")
            value = item.value if isinstance(item, Mutant) else item
        records.append(record(offset, topic, value))
        if what != "valid":
            malformed.append(records[-1])

    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=4), label="cuts"))
    dead: list[tuple[Any, str, str]] = []
    for start, end in zip([0, *cuts], [*cuts, len(records)], strict=True):
        accepted, rejected = consumer.decode(records[start:end])
        assert len(accepted) + len(rejected) == end - start
        dead += rejected
        if accepted:
            await store.append(accepted)

    assert [r for r, _, _ in dead] == malformed
    assert all(reason in REASONS and detail for _, reason, detail in dead), dead
    assert {str(i) for i in store.processed} == valid_ids
    counted = sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "stockledger_ledger_dead_lettered"
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    assert counted == len(malformed)
