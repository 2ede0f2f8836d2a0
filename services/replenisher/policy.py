"""Replenishment policies and the decision to request stock: plain functions over plain data.

Pure: no I/O. The caller supplies the item's policy, the figures it decides by (for ``lines``,
from :mod:`.lines`; for ``normal``, from its demand forecast), its inventory position (available
+ incoming + requested but not yet confirmed), and the other locations of the same sku that
could send a transfer.

- ``lines`` (the default): reorder points chosen across items by the order lines each unit
  serves, from each item's lead-time demand as a distribution (:mod:`.lines`).
- ``normal``: the textbook rule, safety stock z·σ·√L on a Croston/SBA/TSB/SES forecast
  (called ``forecast`` before; that name is still accepted).
- ``static`` (ERPNext's reorder level and quantity) and ``min_max`` (Odoo's orderpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .forecast import Forecast
from .lines import LineFigures

PolicyKind = Literal["static", "min_max", "normal", "lines"]


class Policy(BaseModel):
    """How one sku is replenished at one location."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicyKind = Field(
        default="lines",
        description="lines (the default), normal (``forecast`` is accepted for it), static or"
        " min_max.",
    )
    reorder_level: int = Field(default=0, ge=0, description="static: request at or below this.")
    order_qty: int = Field(default=0, ge=0, description="static: the usual quantity to order.")
    min_qty: int = Field(default=0, ge=0, description="min_max: request below this.")
    max_qty: int = Field(default=0, ge=0, description="min_max: order up to this.")
    qty_multiple: int = Field(default=1, ge=1, description="min_max: order in multiples of it.")
    lead_time_days: float = Field(default=7.0, gt=0, le=365, description="Request to receipt.")
    review_days: float = Field(
        default=7.0,
        ge=0,
        le=365,
        description="lines and normal: the order-up-to level covers this many days' demand"
        " beyond the reorder point.",
    )
    service_level: float = Field(
        default=0.98,
        gt=0.5,
        lt=1,
        description="normal: the chance that the stock at reordering covers the lead time,"
        " for an item whose days with demand ask one unit; n units: a stockout risk n times"
        " as large (at most 0.5).",
    )
    min_order: int = Field(default=1, ge=1, description="The smallest quantity to request.")
    pack_size: int = Field(default=1, ge=1, description="Requests are rounded up to packs.")

    @field_validator("policy", mode="before")
    @classmethod
    def _former_name(cls, value: object) -> object:
        return "normal" if value == "forecast" else value

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        if self.policy == "min_max" and self.max_qty < self.min_qty:
            raise ValueError("max_qty must be at least min_qty")
        if self.policy == "static" and self.order_qty == 0 and self.reorder_level > 0:
            raise ValueError("a static policy with a reorder level needs an order_qty")
        return self


@dataclass(frozen=True)
class Figures:
    """The numbers a policy decides by."""

    reorder_point: float
    order_up_to: float
    safety_stock: float = 0.0
    daily_demand: float = 0.0
    demand_sd: float = 0.0
    cycle_service: float = 0.0  # normal: the item's own service level, by its demand size
    expected_fill: float | None = None  # lines: the item's expected line fill
    lines_per_day: float | None = None  # lines: order lines expected per day
    mean_line_size: float | None = None  # lines: units a line asks, on average
    ltd_quantiles: dict[str, int] | None = None  # lines: quantiles of lead-time demand


@dataclass(frozen=True)
class Source:
    """Another location of the same sku, as a possible source of a transfer."""

    location: str
    available: int
    figures: Figures | None


@dataclass(frozen=True)
class Decision:
    qty: int
    kind: Literal["purchase", "transfer"] = "purchase"
    from_location: str | None = None
    figures: Figures = field(default_factory=lambda: Figures(0, 0))


def line_figures(lines: LineFigures) -> Figures:
    """The figures of the ``lines`` policy, as every policy's are reported."""
    return Figures(
        reorder_point=lines.reorder_point,
        order_up_to=lines.order_up_to,
        safety_stock=max(0.0, lines.reorder_point - lines.ltd_quantiles.get("p50", 0)),
        daily_demand=lines.daily_demand,
        expected_fill=lines.expected_fill,
        lines_per_day=lines.lines_per_day,
        mean_line_size=lines.mean_line_size,
        ltd_quantiles=dict(lines.ltd_quantiles),
    )


def figures_for(
    policy: Policy, demand: Forecast | None, lines: LineFigures | None = None
) -> Figures | None:
    """Reorder point and order-up-to level; None when a ``normal`` policy has no forecast yet
    or a ``lines`` policy no figures yet."""
    if policy.policy == "static":
        return Figures(policy.reorder_level, policy.reorder_level + policy.order_qty)
    if policy.policy == "min_max":
        return Figures(policy.min_qty, policy.max_qty)
    if policy.policy == "lines":
        return None if lines is None else line_figures(lines)
    if demand is None:
        return None
    service = cycle_service(policy.service_level, demand.demand_size)
    lead = policy.lead_time_days
    safety = NormalDist().inv_cdf(service) * demand.demand_sd * math.sqrt(lead)
    reorder_point = demand.daily_demand * lead + safety
    order_up_to = reorder_point + demand.daily_demand * policy.review_days
    return Figures(
        reorder_point, order_up_to, safety, demand.daily_demand, demand.demand_sd, service
    )


def cycle_service(service_level: float, demand_size: float) -> float:
    """The chance of no stockout over a lead time aimed at for an item whose days with demand
    ask ``demand_size`` units on average: the risk ``1 − service_level`` times that size, at
    most 0.5.

    What is measured is order lines served, and a unit of safety stock saves a whole line of
    one unit but only a tenth of a line of ten, so the stock is spent where it serves most
    lines: the risk of running out grows with the size of what the item's customers ask at a
    time (for most items a day with demand is one line)."""
    risk = (1 - service_level) * max(demand_size, 1.0)
    return max(0.5, 1 - risk)


def _round_up(qty: int, multiple: int) -> int:
    return -(-qty // multiple) * multiple


def order_quantity(policy: Policy, figures: Figures, position: int) -> int:
    """How much to request at this inventory position; 0 when no request is due."""
    if policy.policy == "static":
        # ERPNext: when projected ≤ reorder level, max(reorder qty, level − projected)
        if position > policy.reorder_level or policy.order_qty == 0:
            return 0
        qty = max(policy.order_qty, policy.reorder_level - position)
    elif policy.policy == "min_max":
        # Odoo: when the forecast falls below min, max − forecast rounded up to the multiple
        if position >= policy.min_qty:
            return 0
        qty = _round_up(policy.max_qty - position, policy.qty_multiple)
    else:
        if position > figures.reorder_point:
            return 0
        qty = math.ceil(figures.order_up_to - position)
    if qty <= 0:
        return 0
    return _round_up(max(qty, policy.min_order), policy.pack_size)


def decide(
    policy: Policy,
    figures: Figures,
    position: int,
    sources: list[Source] = [],  # noqa: B006
) -> Decision | None:
    """A request when the position is at or below the reorder point: a transfer from the
    location with the largest surplus over its own order-up-to level plus safety stock, if that
    surplus covers the quantity, else a purchase."""
    qty = order_quantity(policy, figures, position)
    if qty == 0:
        return None
    best: tuple[float, str] | None = None
    for s in sources:
        if s.figures is None:
            continue
        surplus = s.available - (s.figures.order_up_to + s.figures.safety_stock)
        if surplus >= qty and (best is None or surplus > best[0]):
            best = (surplus, s.location)
    if best is not None:
        return Decision(qty, "transfer", best[1], figures)
    return Decision(qty, "purchase", None, figures)
