"""Decoding raw input messages into events, or into the reason they were rejected.

Pure: bytes in, an event or a :class:`Rejection` out. The reasons are the ``error.reason`` codes
of the dead-letter topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from .envelope import MAX_MESSAGE_BYTES
from .orders import OrderEvent
from .replenishment import ReplenishmentEvent
from .scans import ScanEvent

InputEvent = Annotated[ScanEvent | OrderEvent | ReplenishmentEvent, Field(discriminator="type")]
INPUT_EVENTS: Final = TypeAdapter[InputEvent](InputEvent)
EVENT_TYPES: Final = frozenset(
    t.model_fields["type"].annotation.__args__[0]
    for t in (*ScanEvent.__args__, *OrderEvent.__args__, *ReplenishmentEvent.__args__)
)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in e["loc"][1:] if p not in EVENT_TYPES) or "event"
        parts.append(f"{where}: {e['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode(value: bytes | None) -> InputEvent | Rejection:
    """Validate one message value; never raises."""
    if not value:
        return Rejection("empty", "the message has no value")
    if len(value) > MAX_MESSAGE_BYTES:
        return Rejection("too_large", f"{len(value)} bytes, the limit is {MAX_MESSAGE_BYTES}")
    try:
        return INPUT_EVENTS.validate_json(value)
    except ValidationError as exc:
        return _diagnose(value, exc)


def _diagnose(value: bytes, error: ValidationError) -> Rejection:
    """Why a message was refused, in the contract's reason codes (the slow path)."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    if not isinstance(parsed, dict):
        return Rejection("schema", f"the value must be a JSON object, not {type(parsed).__name__}")
    kind = parsed.get("type")
    if not isinstance(kind, str):
        return Rejection("schema", "type: a string is required")
    if kind not in EVENT_TYPES:
        return Rejection("unknown_type", f"unknown event type {kind[:80]!r}")
    return Rejection("schema", _describe(error))
