"""Events of ``inventory.scans.v1``: what barcode and RFID scanners saw happen to units."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .envelope import Data, Envelope, Identifier, Location, Qty, SignedQty, Sku

AdjustReason = Literal["found", "lost", "expired", "damaged", "write_off", "correction"]
ReturnCondition = Literal["sellable", "damaged", "inspect"]
InspectionOutcome = Literal["sellable", "damaged"]


class ReceivedData(Data):
    sku: Sku
    location: Location
    qty: Qty
    reference: Identifier | None = Field(
        default=None, description="A replenishment request_id or a transfer_id being received."
    )


class ShippedData(Data):
    sku: Sku
    location: Location
    qty: Qty
    order_id: Identifier
    line_id: Identifier | None = None


class AdjustedData(Data):
    sku: Sku
    location: Location
    qty: SignedQty = Field(description="> 0, except for `correction` where it is signed and ≠ 0.")
    reason: AdjustReason

    @model_validator(mode="after")
    def _qty_fits_reason(self) -> AdjustedData:
        if self.reason == "correction":
            if self.qty == 0:
                raise ValueError("a correction's qty must not be 0")
        elif self.qty <= 0:
            raise ValueError(f"qty must be > 0 for reason {self.reason!r}")
        return self


class CountedData(Data):
    sku: Sku
    location: Location
    counted_qty: int = Field(strict=True, ge=0, le=1_000_000_000)


class TransferredData(Data):
    sku: Sku
    from_location: Location
    to_location: Location
    qty: Qty
    transfer_id: Identifier

    @model_validator(mode="after")
    def _two_places(self) -> TransferredData:
        if self.from_location == self.to_location:
            raise ValueError("from_location and to_location must differ")
        return self


class ReturnedData(Data):
    sku: Sku
    location: Location
    qty: Qty
    order_id: Identifier | None = None
    condition: ReturnCondition


class MovedData(Data):
    sku: Sku
    location: Location
    qty: Qty
    from_bin: Identifier
    to_bin: Identifier


class InspectedData(Data):
    sku: Sku
    location: Location
    qty: Qty = Field(description="Units taken out of quality control; never more than it holds.")
    outcome: InspectionOutcome


class ScanReceived(Envelope):
    type: Literal["scan.received"]
    data: ReceivedData


class ScanShipped(Envelope):
    type: Literal["scan.shipped"]
    data: ShippedData


class ScanAdjusted(Envelope):
    type: Literal["scan.adjusted"]
    data: AdjustedData


class ScanCounted(Envelope):
    type: Literal["scan.counted"]
    data: CountedData


class ScanTransferred(Envelope):
    type: Literal["scan.transferred"]
    data: TransferredData


class ScanReturned(Envelope):
    type: Literal["scan.returned"]
    data: ReturnedData


class ScanMoved(Envelope):
    type: Literal["scan.moved"]
    data: MovedData


class ScanInspected(Envelope):
    type: Literal["scan.inspected"]
    data: InspectedData


ScanEvent = (
    ScanReceived
    | ScanShipped
    | ScanAdjusted
    | ScanCounted
    | ScanTransferred
    | ScanReturned
    | ScanMoved
    | ScanInspected
)
