"""The policies' rules, with the quantities their own documentation gives."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.replenisher.forecast import Forecast
from services.replenisher.policy import (
    Figures,
    Policy,
    Source,
    cycle_service,
    decide,
    figures_for,
    order_quantity,
)

ERPNEXT = Policy(policy="static", reorder_level=10, order_qty=20)
ODOO = Policy(policy="min_max", min_qty=5, max_qty=25)


def qty(policy: Policy, position: int) -> int:
    figures = figures_for(policy, None)
    assert figures is not None
    return order_quantity(policy, figures, position)


@pytest.mark.parametrize(
    ("position", "expected"),
    [(11, 0), (10, 20), (3, 20), (-5, 20), (-15, 25)],
)
def test_erpnext_requests_the_reorder_qty_or_the_deficiency_if_larger(
    position: int, expected: int
) -> None:
    assert qty(ERPNEXT, position) == expected


@pytest.mark.parametrize(("position", "expected"), [(5, 0), (4, 21), (0, 25), (-3, 28)])
def test_odoo_orders_up_to_max_when_the_forecast_falls_below_min(
    position: int, expected: int
) -> None:
    assert qty(ODOO, position) == expected


def test_odoo_rounds_up_to_the_multiple() -> None:
    assert qty(Policy(policy="min_max", min_qty=20, max_qty=40, qty_multiple=12), 10) == 36


def test_minimum_order_and_pack_size_round_a_request_up() -> None:
    policy = Policy(policy="static", reorder_level=10, order_qty=3, min_order=8, pack_size=6)
    assert qty(policy, 9) == 12


def test_the_forecast_policy_sets_safety_stock_reorder_point_and_order_up_to() -> None:
    demand = Forecast("tsb", daily_demand=2.0, demand_sd=1.5, holdout_mae=1.0, history_days=90)
    policy = Policy(policy="normal", lead_time_days=4, review_days=7, service_level=0.95)
    figures = figures_for(policy, demand)
    assert figures is not None
    assert figures.safety_stock == pytest.approx(1.6449 * 1.5 * 2, rel=1e-3)
    assert figures.reorder_point == pytest.approx(8 + figures.safety_stock)
    assert figures.order_up_to == pytest.approx(figures.reorder_point + 14)
    assert figures_for(policy, None) is None


def test_one_request_per_crossing_none_while_open_a_top_up_when_falling_past_it() -> None:
    policy = Policy(policy="min_max", min_qty=10, max_qty=30)
    figures = Figures(10, 30)
    on_hand, requested, requests = 30, 0, []
    for demand in [5, 5, 6, 2, 1, 1, 3, 30, 1]:
        on_hand -= demand
        decision = decide(policy, figures, on_hand + requested)
        if decision:
            requests.append(decision.qty)
            requested += decision.qty
    # 30→25→20→14→12→11→10→7: one request (23) at 7, then 7+23=30 holds until demand of 30
    # drops the position to 0 despite the open request: one top-up (30), none after
    assert requests == [23, 30]


def test_a_transfer_comes_before_a_purchase_when_another_location_has_surplus() -> None:
    policy = Policy(policy="min_max", min_qty=10, max_qty=30)
    rich = Source("EU", available=80, figures=Figures(10, 30, safety_stock=5))
    poor = Source("ROW", available=40, figures=Figures(10, 30, safety_stock=5))
    decision = decide(policy, Figures(10, 30), 4, [poor, rich])
    assert decision is not None
    assert (decision.kind, decision.from_location, decision.qty) == ("transfer", "EU", 26)
    purchase = decide(policy, Figures(10, 30), 4, [poor])
    assert purchase is not None
    assert (purchase.kind, purchase.from_location) == ("purchase", None)


def test_incoherent_policies_are_refused() -> None:
    with pytest.raises(ValidationError):
        Policy(policy="min_max", min_qty=10, max_qty=5)
    with pytest.raises(ValidationError):
        Policy(service_level=1.5)


def test_the_stockout_risk_grows_with_the_size_of_the_lines_down_to_one_half() -> None:
    assert cycle_service(0.98, 1) == pytest.approx(0.98)
    assert cycle_service(0.98, 0.2) == pytest.approx(0.98)  # no line is smaller than a unit
    assert cycle_service(0.98, 10) == pytest.approx(0.80)
    assert cycle_service(0.98, 40) == 0.5


def test_items_ordered_in_large_lines_keep_less_safety_stock() -> None:
    policy = Policy(policy="normal", lead_time_days=4, review_days=7, service_level=0.98)
    singles = Forecast("ses", 2.0, 1.5, 1.0, 90, demand_size=1.0)
    dozens = Forecast("ses", 2.0, 1.5, 1.0, 90, demand_size=12.0)
    wholesale = Forecast("ses", 2.0, 1.5, 1.0, 90, demand_size=100.0)
    a, b, c = (figures_for(policy, f) for f in (singles, dozens, wholesale))
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.safety_stock == pytest.approx(2.0537 * 1.5 * 2, rel=1e-3)
    assert (a.cycle_service, b.cycle_service, c.cycle_service) == pytest.approx((0.98, 0.76, 0.5))
    assert a.safety_stock > b.safety_stock > c.safety_stock == 0
    assert c.reorder_point == pytest.approx(8)
    assert c.order_up_to == pytest.approx(8 + 14)
