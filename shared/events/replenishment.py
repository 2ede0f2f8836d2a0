"""Events of ``replenishment.updates.v1``: what suppliers and warehouses confirmed or cancelled."""

from __future__ import annotations

from typing import Literal

from .envelope import Data, Envelope, Identifier, Location, Qty, Sku, Timestamp


class ConfirmedData(Data):
    request_id: Identifier
    sku: Sku
    location: Location
    qty: Qty
    expected_at: Timestamp | None = None


class RequestCancelledData(Data):
    request_id: Identifier


class ReplenishmentConfirmed(Envelope):
    type: Literal["replenishment.confirmed"]
    data: ConfirmedData


class ReplenishmentCancelled(Envelope):
    type: Literal["replenishment.cancelled"]
    data: RequestCancelledData


ReplenishmentEvent = ReplenishmentConfirmed | ReplenishmentCancelled
