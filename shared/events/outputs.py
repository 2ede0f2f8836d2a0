"""Outputs besides the ledger: ``stock.levels.v1``, ``replenishment.requests.v1`` and the DLQs.

``stock.ledger.v1`` is in :mod:`.ledger`. A dead-letter topic has no model: it carries the
rejected message's original bytes and key unchanged, with the reason in headers
(:data:`DEAD_LETTER_HEADERS`).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .envelope import Envelope, Identifier, Location, Qty, Sku

ReplenishmentKind = Literal["purchase", "transfer"]
PolicyName = Literal["lines", "normal", "static", "min_max", "forecast"]

DEAD_LETTER_HEADERS: Final = {
    "error.reason": "why it was rejected, a short code: empty, invalid_json, schema (also a "
    "valid event a stock rule refuses, such as an inspection of more than quality control "
    "holds), unknown_type, too_large, conflict (an event_id recorded with other content), or "
    "internal (a valid event the ledger failed to append)",
    "error.detail": "what was wrong, for people (at most 1000 bytes)",
    "error.offset": "`<partition>:<offset>` of the original record on the input topic",
    "error.truncated": "present only on a dead letter that would not fit its topic otherwise: "
    "`headers` (the original headers are left out, the detail cut to 200 bytes; value and key "
    "are whole) or `value` (the value is its first bytes, as many as fit)",
    "error.original_size": "with `error.truncated: value`, the original value's length in bytes",
}
"""The headers added to a dead-lettered message; its own headers are kept before them (unless
``error.truncated`` says they were left out)."""


class StockLevelMessage(BaseModel):
    """The level of one sku at one location after a change, keyed ``<location>|<sku>``.

    The topic is log-compacted: the latest message per key is the current level.
    """

    model_config = ConfigDict(frozen=True)

    sku: Sku
    location: Location
    on_hand: int = Field(description="Units physically there.")
    committed: int = Field(description="Units promised to placed orders, not yet shipped.")
    damaged: int = Field(description="Units on hand that are damaged.")
    quality_control: int = Field(description="Units on hand held for inspection.")
    incoming: int = Field(description="Confirmed replenishments and transfers on their way.")
    available: int = Field(
        description="on_hand − committed − damaged − quality_control; negative when oversold."
    )
    position: int = Field(description="Ledger position of the last entry this level includes.")
    updated_at: AwareDatetime = Field(description="When the level last changed (RFC 3339).")

    @model_validator(mode="after")
    def _available_is_derived(self) -> StockLevelMessage:
        derived = self.on_hand - self.committed - self.damaged - self.quality_control
        if self.available != derived:
            raise ValueError(
                f"available must be on_hand − committed − damaged − quality_control = {derived}"
            )
        return self


class RequestReason(BaseModel):
    """The figures behind a replenishment request, as they stood when it was raised."""

    model_config = ConfigDict(frozen=True)

    inventory_position: int = Field(
        description="available + incoming + units requested but not yet confirmed."
    )
    reorder_point: float = Field(description="The position at or below which a request is raised.")
    safety_stock: float = Field(ge=0, description="Units held against demand and lead-time spread.")
    daily_demand: float = Field(ge=0, description="Expected units per day.")
    lead_time_days: float = Field(ge=0, description="Days from request to receipt.")
    policy: PolicyName = Field(
        description="The policy in force for this sku and location (forecast: the former name"
        " of normal, in requests raised before it was renamed)."
    )


class RequestedData(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: Identifier = Field(
        description="Deterministic; confirmations and receipts refer to it."
    )
    sku: Sku
    location: Location = Field(description="The location to replenish.")
    qty: Qty
    kind: ReplenishmentKind = Field(
        description="purchase: from a supplier; transfer: from another location."
    )
    from_location: Location | None = Field(
        default=None, description="The location to transfer from; only for a transfer."
    )
    needed_by: AwareDatetime = Field(description="When the units must be there (RFC 3339).")
    reason: RequestReason

    @model_validator(mode="after")
    def _source_fits_kind(self) -> RequestedData:
        if self.kind == "transfer":
            if self.from_location is None:
                raise ValueError("a transfer needs from_location")
            if self.from_location == self.location:
                raise ValueError("from_location and location must differ")
        elif self.from_location is not None:
            raise ValueError("only a transfer has a from_location")
        return self


class ReplenishmentRequested(Envelope):
    """A request for stock, keyed ``<location>|<sku>``, in the input envelope.

    Its ``event_id`` is deterministic, so a request raised again after a restart is the same one.
    """

    type: Literal["replenishment.requested"] = Field(description="Always replenishment.requested.")
    data: RequestedData
