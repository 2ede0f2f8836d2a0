"""``stock.ledger.v1``: the message published for each ledger entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

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


def entry_message(row: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a ledger row (as read from ``ledger_entries``)."""
    message: dict[str, Any] = {
        "position": row["position"],
        "entry_id": str(row["entry_id"]),
        "sku": row["sku"],
        "location": row["location"],
        "kind": row["kind"],
        "deltas": {s: row[s] for s in STATES},
        "occurred_at": _rfc3339(row["occurred_at"]),
        "recorded_at": _rfc3339(row["recorded_at"]),
        "source_event_id": str(row["source_event_id"]),
        "source_type": row["source_type"],
    }
    if row.get("reference") is not None:
        message["reference"] = row["reference"]
    detail = row.get("detail")
    if detail is not None:
        message["detail"] = orjson.loads(detail) if isinstance(detail, str) else detail
    return message


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
