"""Events of ``commerce.orders.v1``: what shops sold, cancelled and fulfilled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .envelope import Data, Envelope, Identifier, Location, Qty, Sku


class OrderLine(Data):
    line_id: Identifier
    sku: Sku
    qty: Qty


class LineRef(Data):
    line_id: Identifier


def _unique_lines(lines: list[OrderLine] | list[LineRef]) -> None:
    ids = [line.line_id for line in lines]
    if len(ids) != len(set(ids)):
        raise ValueError("line_id values must be unique within an order")


class PlacedData(Data):
    order_id: Identifier
    location: Location = Field(description="The order's fulfilment location.")
    lines: list[OrderLine] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _lines_unique(self) -> PlacedData:
        _unique_lines(self.lines)
        return self


class CancelledData(Data):
    order_id: Identifier
    lines: list[LineRef] | None = Field(
        default=None, min_length=1, description="The lines cancelled; absent: the whole order."
    )

    @model_validator(mode="after")
    def _lines_unique(self) -> CancelledData:
        if self.lines is not None:
            _unique_lines(self.lines)
        return self


class FulfilledData(PlacedData):
    pass


class OrderPlaced(Envelope):
    type: Literal["order.placed"]
    data: PlacedData


class OrderCancelled(Envelope):
    type: Literal["order.cancelled"]
    data: CancelledData


class OrderFulfilled(Envelope):
    type: Literal["order.fulfilled"]
    data: FulfilledData


OrderEvent = OrderPlaced | OrderCancelled | OrderFulfilled
