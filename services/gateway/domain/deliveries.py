"""Outbound webhooks: which endpoint gets which output event, in what body, and when a failed
attempt is tried again. Pure: no I/O.

The caller supplies the output topic's records (topic without prefix, parsed value), the
registered :class:`Endpoint` s, and for retries the attempt number and a random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from shared.topics import LEVELS, REPLENISHMENT_REQUESTS

from .events import event_id

REQUESTED = "replenishment.requested"
LEVEL_CHANGED = "stock.level.changed"
TYPES = (REQUESTED, LEVEL_CHANGED)
DEFAULT_TYPES = (REQUESTED,)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    secret: str
    locations: frozenset[str] | None  # None: every location
    types: frozenset[str]


@dataclass(frozen=True, slots=True)
class Message:
    """One output event as a Standard Webhooks message: ``id`` is the ``webhook-id``, the same
    on every attempt and every endpoint; ``key`` is the item (``location|sku``) whose messages
    are delivered in order."""

    id: str
    type: str
    key: str
    location: str
    body: bytes


def message_of(topic: str, value: Any) -> Message | None:
    """The message of an output record; None for a record of no outbound type, or one without
    the fields its type has (our topics carry only what our services wrote, but a record that
    cannot be delivered must not stop the ones after it)."""
    try:
        return _message_of(topic, value)
    except (KeyError, TypeError, AttributeError):
        return None


def _message_of(topic: str, value: Any) -> Message | None:
    if not isinstance(value, dict):
        return None
    if topic == REPLENISHMENT_REQUESTS and value.get("type") == REQUESTED:
        data = value["data"]
        body = {"type": REQUESTED, "timestamp": value["occurred_at"], "data": data}
        key = f"{data['location']}|{data['sku']}"
        return Message(str(value["event_id"]), REQUESTED, key, data["location"], _dumps(body))
    if topic == LEVELS and "sku" in value and "position" in value:
        sku, location = value["sku"], value["location"]
        ident = event_id("level", sku, location, value["position"])
        body = {"type": LEVEL_CHANGED, "timestamp": value.get("updated_at"), "data": value}
        return Message(ident, LEVEL_CHANGED, f"{location}|{sku}", location, _dumps(body))
    return None


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def wants(endpoint: Endpoint, message: Message) -> bool:
    if message.type not in endpoint.types:
        return False
    return endpoint.locations is None or message.location in endpoint.locations


def retry_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling from
    ``initial_s`` up to ``max_s``, each wait drawn between half and the whole of it (jitter, so
    that the deliveries a receiver's outage held back do not all come back at once)."""
    ceiling = min(initial_s * 2 ** min(attempt - 1, 60), max_s)
    return float(ceiling * (0.5 + 0.5 * rng.random()))


def verdict(status: int) -> str:
    """What an answer means (Standard Webhooks): 2xx ``delivered``; 410 ``gone`` (the receiver
    asks for no more); anything else, redirects included, ``retry``."""
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry"
