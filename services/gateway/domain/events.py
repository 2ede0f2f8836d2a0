"""Input events the gateway builds, and where each goes. Pure: no I/O.

An event is a plain dict in the contract's envelope; :func:`routed` names its input topic and key
(the keys the contract recommends), :func:`event_id` derives its id from what the sender gave,
so that a retried or duplicated delivery yields the same id and the ledger applies it once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.topics import ORDERS, REPLENISHMENT_UPDATES, SCANS

NAMESPACE = uuid.UUID("5f0c3c6e-2b7e-4a7e-9a51-6a0b3f6c1d20")
"""The namespace of every id the gateway derives (uuid5); fixed forever, ids depend on it."""
_NAMESPACE_BYTES = NAMESPACE.bytes


def event_id(*parts: object) -> str:
    """A deterministic id of the parts (joined with a separator no part is expected to hold):
    ``str(uuid.uuid5(NAMESPACE, name))``, computed without the UUID object (it runs for every
    event of every webhook)."""
    name = "\x1f".join([str(p) for p in parts]).encode()
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + name)  # noqa: S324 - uuid5 is SHA-1 by definition
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def envelope(
    id_: str, type_: str, occurred_at: str, source: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": id_,
        "type": type_,
        "schema_version": 1,
        "occurred_at": occurred_at,
        "source": source[:256],
        "data": data,
    }


@dataclass(frozen=True, slots=True)
class Routed:
    topic: str  # the contract's name, without the deployment's prefix
    key: str
    event: dict[str, Any]
    value: bytes | None = None  # the event as JSON, when the caller already has it


def routed(event: dict[str, Any], value: bytes | None = None) -> Routed:
    """The topic and key of a contract event (already validated); ``value``, the event's JSON if
    the caller serialized it already (to validate it), is published as it is."""
    kind: str = event["type"]
    data = event["data"]
    if kind.startswith("order."):
        return Routed(ORDERS, str(data["order_id"]), event, value)
    if kind.startswith("replenishment."):
        return Routed(REPLENISHMENT_UPDATES, str(data["request_id"]), event, value)
    location = data.get("location") or data.get("from_location")
    return Routed(SCANS, f"{location}|{data['sku']}", event, value)


def rfc3339(value: object, fallback: str | Callable[[], str]) -> str:
    """``value`` when it is a time with an offset; a naive one is taken as UTC (WooCommerce's
    ``*_gmt`` fields); anything else gives ``fallback`` (called, if a function: ``now`` is read
    only when needed)."""
    if not isinstance(value, str) or not value:
        return fallback if isinstance(fallback, str) else fallback()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return fallback if isinstance(fallback, str) else fallback()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def now() -> str:
    return datetime.now(UTC).isoformat()
