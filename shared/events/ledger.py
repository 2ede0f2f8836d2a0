"""``stock.ledger.v1``: the message published for each ledger entry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field

STATES = ("on_hand", "committed", "damaged", "quality_control", "incoming")


class Deltas(BaseModel):
    model_config = ConfigDict(frozen=True)
    on_hand: int = 0
    committed: int = 0
    damaged: int = 0
    quality_control: int = 0
    incoming: int = 0


class LedgerEntryMessage(BaseModel):
    """One ledger entry, keyed ``<location>|<sku>``, in ledger order per key."""

    model_config = ConfigDict(frozen=True)

    position: int = Field(description="Global, gap-tolerant, strictly increasing position.")
    entry_id: UUID
    sku: str
    location: str
    kind: str = Field(description="receipt, shipment, commitment, release, adjustment, ...")
    deltas: Deltas
    occurred_at: datetime
    recorded_at: datetime
    source_event_id: UUID
    source_type: str
    reference: str | None = None
    detail: dict[str, Any] | None = Field(
        default=None, description="Kind-specific facts: reason, expected/counted, bins, line."
    )


def entry_message(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """The wire form of a ledger row (as read from ``ledger_entries``); serialize it with
    :func:`dumps` (times in UTC with ``Z``, ids as strings, ``detail`` as stored)."""
    message: dict[str, Any] = {
        "position": row["position"],
        "entry_id": row["entry_id"],
        "sku": row["sku"],
        "location": row["location"],
        "kind": row["kind"],
        "deltas": {
            "on_hand": row["on_hand"],
            "committed": row["committed"],
            "damaged": row["damaged"],
            "quality_control": row["quality_control"],
            "incoming": row["incoming"],
        },
        "occurred_at": row["occurred_at"],
        "recorded_at": row["recorded_at"],
        "source_event_id": row["source_event_id"],
        "source_type": row["source_type"],
    }
    if row["reference"] is not None:
        message["reference"] = row["reference"]
    detail = row["detail"]
    if detail is not None:
        message["detail"] = orjson.Fragment(detail) if isinstance(detail, str) else detail
    return message


def dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, default=str, option=orjson.OPT_UTC_Z)  # asyncpg has its own UUID


def as_json(message: dict[str, Any]) -> Any:
    """The message as plain JSON values (for an API answer)."""
    return orjson.loads(dumps(message))
